"""Round-to-nearest weight quantization (eval/attacks/quantize.py): hand-computed grids, and
int8 of a tiny model moves every weight by at most half a quantization step."""

import copy

import pytest
import torch

import edit_toy
from eval.attacks.quantize import (QuantSpec, bnb_problem, quantizable, quantize_model_,
                                   rtn_quantize)
from lethe.errors import LetheError


def test_rtn_symmetric_int4_by_hand():
    # one row, groups of 4: [0.1, -0.35, 0.7, 0.0] has s = 0.7 / 7 = 0.1, so w / s =
    # [1, -3.5, 7, 0] rounds (half to even) to [1, -4, 7, 0]; the tail [0.2, 0.3] is a group of
    # its own with s = 0.3 / 7: [4.67, 7] -> [5, 7]
    w = torch.tensor([[0.1, -0.35, 0.7, 0.0, 0.2, 0.3]])
    q, s = rtn_quantize(w, bits=4, group_size=4, scheme="sym")
    expected = torch.tensor([[0.1, -0.4, 0.7, 0.0, 5 * 0.3 / 7, 0.3]])
    assert torch.allclose(q, expected, atol=1e-6)
    assert torch.allclose(s, torch.tensor([[0.1] * 4 + [0.3 / 7] * 2]), atol=1e-7)


def test_rtn_asymmetric_int4_by_hand():
    # [-1, 0, 0.5, 2]: s = 3 / 15 = 0.2, zero point z = round(1 / 0.2) = 5;
    # round(w / s) + z = [0, 5, round(2.5) + 5 = 7, 15] -> (q - z) s = [-1, 0, 0.4, 2]
    q, s = rtn_quantize(torch.tensor([[-1.0, 0.0, 0.5, 2.0]]), bits=4, group_size=4,
                        scheme="asym")
    assert torch.allclose(q, torch.tensor([[-1.0, 0.0, 0.4, 2.0]]), atol=1e-6)
    assert torch.allclose(s, torch.full((1, 4), 0.2), atol=1e-7)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_int8_rtn_moves_each_weight_by_at_most_half_a_step(tok, arch):
    model = getattr(edit_toy, arch)(tok)
    before = copy.deepcopy(model)
    summary = quantize_model_(model, QuantSpec(bits=8, group_size=16))
    names = {n for n, _ in quantizable(model)}
    assert summary["matrices"] == len(names) > 0 and summary["max_error_in_steps"] <= 0.5 + 1e-4
    from transformers.pytorch_utils import Conv1D

    changed = 0
    for name, module in before.named_modules():
        if name not in names:
            continue
        new = model.get_submodule(name).weight
        # the groups run along the input dimension: rows of (out, in)
        w = module.weight.T if isinstance(module, Conv1D) else module.weight
        q = new.T if isinstance(module, Conv1D) else new
        groups = w.reshape(w.shape[0], -1, 16)  # every dimension here is a multiple of 16
        step = (groups.abs().amax(-1, keepdim=True) / 127).expand(-1, -1, 16).reshape(w.shape)
        err = (q - w).abs()
        assert bool((err <= step / 2 + 1e-7).all()), name
        levels = q / step  # on the grid: integers within ±127
        assert torch.allclose(levels, levels.round(), atol=1e-3) and levels.abs().max() <= 127.01
        changed += int((err > 0).sum())
    assert changed > 0
    for name, p in before.named_parameters():  # embeddings and the head are kept
        if not any(name.startswith(n + ".") for n in names):
            assert torch.equal(p, model.get_parameter(name)), name


def test_bad_quant_specs_are_one_line_errors():
    with pytest.raises(LetheError, match="supports 4 and 8 bits"):
        QuantSpec(bits=3)
    with pytest.raises(LetheError, match="use sym or asym"):
        QuantSpec(bits=8, scheme="nf4")


@pytest.mark.gpu
@pytest.mark.skipif(bnb_problem() is not None, reason="needs bitsandbytes and CUDA")
def test_bitsandbytes_backend_loads_quantized(tmp_path, tok):
    from eval.attacks.quantize import load_quantized

    edit_toy.llama(tok).save_pretrained(tmp_path / "m")
    model = load_quantized(str(tmp_path / "m"), QuantSpec(bits=8, backend="bnb"))
    assert getattr(model, "is_loaded_in_8bit", False)
