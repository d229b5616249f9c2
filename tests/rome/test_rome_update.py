"""The rank-one update (ROME Eq. 2): W'k* = v*, C⁻¹-orthogonal keys untouched, Conv1D transposed,
only the edited weight changes, and restore() is bit-exact."""

import pytest
import torch

import edit_toy
from tests.helpers import fixture_seed
from unlearn.rome import EditConfig, edit_model, restore
from unlearn.rome.update import (apply_delta, covariance_factor, left_vector, rank_one_delta)


def _spd(d, seed):
    g = torch.Generator().manual_seed(fixture_seed(seed))
    a = torch.randn(d, 3 * d, generator=g, dtype=torch.float64)
    return a @ a.T / (3 * d)


def test_rank_one_delta_matches_closed_form_and_spares_c_orthogonal_keys():
    d_ff, d_model = 6, 4
    cov = _spd(d_ff, 0)
    g = torch.Generator().manual_seed(fixture_seed(1))
    k = torch.randn(d_ff, generator=g, dtype=torch.float64)
    r = torch.randn(d_model, generator=g, dtype=torch.float64)
    u = left_vector(k, covariance_factor(cov, 0.0, "cpu"))
    delta = rank_one_delta(k, r, u)
    # hand formula: ΔW = r (C⁻¹k)ᵀ / (kᵀ C⁻¹ k)
    cinv_k = torch.linalg.inv(cov) @ k
    assert torch.allclose(delta, torch.outer(r, cinv_k) / (k @ cinv_k), atol=1e-10)
    assert torch.allclose(delta @ k, r, atol=1e-10)  # Ŵ k* = W k* + (v* − W k*)
    assert torch.linalg.matrix_rank(delta) == 1
    # a key with (C⁻¹k*)ᵀ k2 = 0 is not changed; a plain-orthogonal one generally is
    k2 = torch.randn(d_ff, generator=g, dtype=torch.float64)
    k2 = k2 - (u @ k2) / (u @ u) * u
    assert torch.allclose(delta @ k2, torch.zeros(d_model, dtype=torch.float64), atol=1e-10)
    k3 = torch.randn(d_ff, generator=g, dtype=torch.float64)
    k3 = k3 - (k @ k3) / (k @ k) * k
    assert (delta @ k3).abs().max() > 1e-3
    # C = I: the left vector is k* itself
    assert torch.equal(left_vector(k, None), k)


def test_apply_delta_handles_linear_and_transposed_conv1d():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(fixture_seed(0))
    linear, conv = torch.nn.Linear(6, 4), Conv1D(4, 6)  # both map R^6 -> R^4
    assert conv.weight.shape == (6, 4) and linear.weight.shape == (4, 6)
    k = torch.randn(6)
    delta = torch.randn(4, 6, dtype=torch.float64)
    for module, orientation in ((linear, "out_in"), (conv, "in_out")):
        before = module(k[None])[0].detach().clone()
        apply_delta(module, delta, orientation)
        after = module(k[None])[0].detach()
        assert torch.allclose(after - before, (delta @ k.double()).float(), atol=1e-5)


def test_singular_covariance_is_a_clear_error():
    from lethe.errors import LetheError

    cov = torch.zeros(4, 4, dtype=torch.float64)
    cov[0, 0] = 1.0
    with pytest.raises(LetheError, match="singular"):
        covariance_factor(cov, 0.0, "cpu")
    covariance_factor(cov, 1e-3, "cpu")  # a ridge makes it solvable


@pytest.mark.parametrize("arch, update_key", [("llama", "mean"), ("gpt2", "mean"),
                                              ("llama", "prompt")])
def test_edit_maps_k_to_v_star_and_touches_only_one_weight(arch, update_key, tok, facts, corpus):
    model = getattr(edit_toy, arch)(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = EditConfig(layer=1, objective="fact_erasure", context_lengths=((3, 2),), v_steps=6,
                     v_lr=0.5, cov_ridge=1e-3, update_key=update_key)
    record = edit_model(model, tok, facts[0][:1], cfg, corpus)
    module = model.get_submodule(record.module)
    edit = record.edits[0]
    assert edit.delta_norm > 0
    # "mean": the update is exact for k* (ROME Eq. 2); "prompt": for the bare prompt's key
    assert torch.equal(edit.k_update, edit.k_star) == (update_key == "mean")
    out = module(edit.k_update[None])[0].detach()  # W' k + b
    assert torch.allclose(out, edit.v_star, atol=1e-5 * max(1.0, float(edit.v_star.norm())))
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == [f"{record.module}.weight"]
    diff = (model.state_dict()[changed[0]] - before[changed[0]]).double()
    assert torch.linalg.matrix_rank(diff, rtol=1e-5) == 1
    assert len(record.contexts) == 1 + 2  # '{}' + two sampled prefixes
    restore(model, record)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_sequential_edits_then_restore_is_bit_identical(tok, facts, corpus):
    model = edit_toy.gpt2(tok, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = EditConfig(layer=2, objective="head_projection", context_lengths=(), v_steps=4,
                     v_lr=0.5, cov_ridge=1e-3)
    record = edit_model(model, tok, facts[0], cfg, corpus)
    assert len(record.edits) == 3
    # the last edit holds exactly; W' differs from W by the sum of three rank-one terms
    last = record.edits[-1]
    module = model.get_submodule(record.module)
    assert torch.allclose(module(last.k_update[None])[0].detach(), last.v_star, atol=1e-4)
    assert not torch.equal(module.weight, before[f"{record.module}.weight"])
    restore(model, record)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    summary = record.summary()
    assert summary["layer"] == 2 and [e["case_id"] for e in summary["edits"]] == [0, 1, 2]


def test_an_edit_that_fails_midway_leaves_the_weights_untouched(tok, facts, monkeypatch):
    from unlearn.rome import edit as edit_mod

    model = edit_toy.llama(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real, calls = edit_mod.optimise_value, []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(edit_mod, "optimise_value", fail_second)
    cfg = EditConfig(layer=1, context_lengths=(), v_steps=3, use_covariance=False)
    model.train()
    with pytest.raises(KeyboardInterrupt):
        edit_model(model, tok, facts[0], cfg)
    assert len(calls) == 2 and model.training  # the first fact was applied, then undone
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
