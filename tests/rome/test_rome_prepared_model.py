"""Edits on a model shaped like `unlearn prepare`'s: the BOS-prepending byte-level BPE of
unlearn.prepare.train_tokenizer, a 2-block Llama with tied embeddings saved to safetensors and
loaded back through lethe.loading (the regression: an edit at the last block was a silent no-op,
δ stayed 0 because nothing after that block carries the subject position to the answer)."""

import pytest
import torch

import edit_toy
from lethe.errors import LetheError
from lethe.loading import load_model, load_tokenizer
from tests.helpers import THREADS, fixture_seed
from unlearn.prepare import train_tokenizer
from unlearn.rome import EditConfig, edit_model, restore
from unlearn.rome.prompts import make_row

# v_lr: ROME's 0.5 is sized for GPT-J's ||v|| ~ 10²; this model's ||v_orig|| is ~2
KW = dict(context_lengths=(), v_steps=10, v_lr=0.05, clamp_norm_factor=10.0, cov_ridge=1e-3)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """(model, tokenizer) as `unlearn prepare` leaves them: trained ~3 s, saved, reloaded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(THREADS)
    tok = train_tokenizer(edit_toy.sentences() + [" ".join(edit_toy.FILLER)], 330)
    torch.manual_seed(fixture_seed(0))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    # 150 steps: the whitespace-isolating tokenizer makes prompts longer, and at 40 steps the
    # 2-block model barely reads a layer-0 edit at the answer positions (loss moved < 0.01)
    model = edit_toy.train(LlamaForCausalLM(cfg), tok, steps=150)
    path = tmp_path_factory.mktemp("prepared") / "target"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    assert (path / "model.safetensors").exists()
    return load_model(str(path)).eval(), load_tokenizer(str(path))


def test_bos_tokenizer_rows_point_at_the_subjects_last_token(prepared):
    _, tok = prepared
    row = make_row(tok, "The birthplace of {} is", "Alva Brenn", "test")
    assert row.ids[0] == tok.bos_token_id  # prepare's post-processor prepends <s>
    assert list(row.ids) == tok(row.text)["input_ids"]
    assert tok.decode(list(row.ids[:row.subject_index + 1]), skip_special_tokens=True) \
        .endswith("Alva Brenn")
    assert not tok.decode(list(row.ids[:row.subject_index]),
                          skip_special_tokens=True).endswith("Alva Brenn")


def test_edit_moves_delta_and_the_weight_on_a_prepared_model(prepared, facts, corpus):
    """The regression: δ stayed exactly 0 and the loss was the same at every step. Checked
    against the edit's own optimisation log and ROME's closed form, which hold on any CPU:
    the objective fell while δ grew, and the rewritten layer now returns v* for the last key.

    Not asserted: how far log p(dummy | prompt) moves in the edited model. In this 2-block
    toy the subject reaches the answer through one attention layer, and the other positions'
    keys also pass through the edited weight, so that end effect depends on the trained
    attention pattern, not on the code (measured over 6 fixture seeds x 1-2 threads: from
    -1.6 to +9.9 nats; a +0.3 bound passed on one CPU and failed on another)."""
    model, tok = prepared
    forget = facts[0]
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # weight_decay 0: the logged loss is the objective (+ a KL term that starts at 0), so
    # "the optimiser lowered it" is a property of Adam on a non-zero gradient, not a margin
    cfg = EditConfig(objective="empty_response", dummy_target="I don't know", layer=0,
                     weight_decay=0.0, **KW)
    record = edit_model(model, tok, forget, cfg, corpus)
    for edit in record.edits:
        assert edit.delta_norm > 0.1, edit.logs
        assert len(edit.losses) == KW["v_steps"], edit.losses
        assert edit.losses[-1] < edit.losses[0], edit.losses  # measured drop: 0.03-1.2 nats
        assert len(set(edit.losses)) == len(edit.losses)  # the loss moved at every step
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed == ["model.layers.0.mlp.down_proj.weight"]
    # ROME Eq. 2: after the last rank-one update the edited layer maps its key to v* exactly
    # (the earlier facts' values were moved again by the later updates: sequential edits)
    last = record.edits[-1]
    down = model.model.layers[0].mlp.down_proj
    with torch.no_grad():
        value = down(last.k_update[None].to(down.weight.dtype))[0]
    torch.testing.assert_close(value, last.v_star, rtol=1e-4, atol=1e-5)
    original = before["model.layers.0.mlp.down_proj.weight"] @ last.k_update  # (d_model,)
    assert (last.v_star - original).norm() > 0.1  # ... and v* is not what it returned before
    restore(model, record)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_last_block_edit_is_refused_unless_the_prompt_ends_with_the_subject(prepared, facts):
    model, tok = prepared
    fact = facts[0][0]
    cfg = EditConfig(objective="empty_response", layer=1, use_covariance=False, **KW)
    weight = model.model.layers[1].mlp.down_proj.weight.detach().clone()
    with pytest.raises(LetheError) as err:
        edit_model(model, tok, [fact], cfg)
    text = str(err.value)
    assert "\n" not in text and "last block" in text and "lower layer (0)" in text
    assert torch.equal(model.model.layers[1].mlp.down_proj.weight, weight)
    # This tokenizer isolates whitespace, so even with the subject at the end of the prompt
    # its last token predicts the lone space before the answer, not the answer: refused too.
    # (With a GPT-2-style BPE the answer token " Vess" follows the subject and it is allowed.)
    with pytest.raises(LetheError, match="last block"):
        edit_model(model, tok, [dict(fact, prompt="We talked about {}")], cfg)
    assert torch.equal(model.model.layers[1].mlp.down_proj.weight, weight)
