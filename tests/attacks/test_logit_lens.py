"""The logit lens: final norm + unembedding of each block's output at the last prompt token."""

import pytest
import torch

import edit_toy
from lethe.lens import decode, iter_prompt_lens, lens_layout, resolve_layers
from lethe.errors import LetheError

PROMPTS = ["Alva Brenn was born in", "the old town", "The birthplace of Kara Lund is"]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lens_matches_hidden_states_and_ends_at_the_logits(arch, tok):
    model = getattr(edit_toy, arch)(tok)
    layout = lens_layout(model)
    n = 4
    lens = torch.cat([lens for _, lens in iter_prompt_lens(model, tok, PROMPTS, range(n),
                                                           batch_size=2)], dim=1)  # (L, 3, V)
    assert lens.shape == (n, len(PROMPTS), len(tok))
    for i, prompt in enumerate(PROMPTS):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
            # hidden_states[l + 1] is block l's output; the last one is already normed
            for layer in range(n - 1):
                want = decode(model, layout, out.hidden_states[layer + 1][0, -1])
                assert torch.allclose(lens[layer, i], want, atol=1e-4)
        assert torch.allclose(lens[n - 1, i], out.logits[0, -1], atol=1e-4)


def test_layer_numbers_and_layouts_are_checked(tok):
    assert resolve_layers([-1, 0, 2], 4) == (3, 0, 2)
    assert resolve_layers(None, 3) == (0, 1, 2)
    with pytest.raises(LetheError, match="out of range"):
        resolve_layers([4], 4)
    model = edit_toy.llama(tok)
    assert lens_layout(model).final_norm == "model.norm"
    assert lens_layout(edit_toy.gpt2(tok)).blocks == "transformer.h"
    with pytest.raises(LetheError, match="final norm 'model.ln_f' not found"):
        lens_layout(model, final_norm="model.ln_f")
    model.config.model_type = "mystery"
    with pytest.raises(LetheError, match="no logit-lens layout"):
        lens_layout(model)
