"""Packed training rows (unlearn.data.PackedLMCollator): the same examples and the same loss as
padding each to the longest, in fewer tokens; prepare refuses a model that would leak."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from lethe.errors import LetheError
from tests.helpers import fixture_seed
from unlearn.data import LMCollator, PackedLMCollator
from unlearn.methods.losses import nll
from unlearn.prepare import check_packing

LENGTHS = (5, 9, 3, 12, 7, 2)


def examples():
    g = torch.Generator().manual_seed(fixture_seed(0))
    return [{"input_ids": torch.randint(3, 100, (n,), generator=g).tolist()} for n in LENGTHS]


def test_rows_hold_every_example_once_with_its_own_positions_and_labels():
    ex = examples()
    batch = PackedLMCollator(pad_token_id=0, row_length=16)(ex)
    ids, pos, labels = batch["input_ids"], batch["position_ids"], batch["labels"]
    assert ids.shape == (3, 16)  # 38 tokens in 3 rows of 16 (first fit, longest first)
    found = []
    for r in range(ids.shape[0]):
        starts = [t for t in range(16) if pos[r, t] == 0] + [16]
        for a, b in zip(starts, starts[1:]):
            piece = ids[r, a:b].tolist()
            if labels[r, a:b].eq(-100).all():  # the row's unused tail
                assert piece == [0] * (b - a)
                continue
            found.append(piece)
            assert pos[r, a:b].tolist() == list(range(b - a))
            # the first token is never a target; the rest predict themselves (shift in the loss)
            assert labels[r, a].item() == -100 and labels[r, a + 1:b].tolist() == piece[1:]
    assert sorted(found) == sorted(e["input_ids"] for e in ex)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_packed_loss_equals_the_padded_loss(arch):
    torch.manual_seed(fixture_seed(0))
    model = (LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64,
                                          num_hidden_layers=2, num_attention_heads=2,
                                          max_position_embeddings=64))
             if arch == "llama" else
             GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2,
                                        n_positions=64))).eval()
    ex = examples()
    padded, packed = LMCollator(0)(ex), PackedLMCollator(0, 16)(ex)
    assert packed["input_ids"].numel() < padded["input_ids"].numel()  # 48 vs 72 tokens
    with torch.no_grad():
        assert nll(model, packed).item() == pytest.approx(nll(model, padded).item(), rel=1e-5)
    check_packing(model, LMCollator(0), PackedLMCollator(0, 16), ex)  # passes


class Leaky(torch.nn.Module):
    """A model that ignores position_ids: packed documents would attend to each other."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_prepare_refuses_packing_for_a_model_that_would_leak():
    torch.manual_seed(fixture_seed(0))
    inner = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         max_position_embeddings=64)).eval()
    with pytest.raises(LetheError, match="prepare.pack: false"):
        check_packing(Leaky(inner), LMCollator(0), PackedLMCollator(0, 16), examples())
