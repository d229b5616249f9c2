"""MEMIT (unlearn/memit/): Eq. 14's closed form against a hand computation on two facts, the
residual spread of Alg. 1, and a batch edit on the toy fact world (every edited layer changes
by at most rank n, the last layer writes exactly what is still missing, restore is exact)."""

import pytest
import torch

import edit_toy
from lethe.errors import LetheError
from unlearn.memit import MemitConfig, edit_model
from unlearn.memit.hparams import default_layers
from unlearn.memit.update import batch_delta, spread
from unlearn.rome import restore


def test_batch_delta_matches_a_hand_computation_on_two_facts():
    # keys k1 = (1, 0), k2 = (1, 1) (rows), residuals r1 = (1, 0), r2 = (0, 1), C = [[2, 1],
    # [1, 2]], λ = 0.5. Then λC + K Kᵀ = [[1, .5], [.5, 1]] + [[2, 1], [1, 1]] = [[3, 1.5],
    # [1.5, 2]], det 3.75, inverse [[2, -1.5], [-1.5, 3]] / 3.75, and R Kᵀ = [[1, 0], [1, 1]],
    # so Δ = [[2, -1.5], [0.5, 1.5]] / 3.75.
    keys = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    residuals = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    cov = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    delta = batch_delta(keys, residuals, cov, weight=0.5)
    expected = torch.tensor([[2.0, -1.5], [0.5, 1.5]], dtype=torch.float64) / 3.75
    assert delta.dtype == torch.float64 and torch.allclose(delta, expected, atol=1e-12)
    # C = I, λ = 1: λI + K Kᵀ = [[3, 1], [1, 2]] (det 5), Δ = [[1, 0], [1, 1]] [[2, -1],
    # [-1, 3]] / 5 = [[2, -1], [1, 2]] / 5
    expected_i = torch.tensor([[2.0, -1.0], [1.0, 2.0]], dtype=torch.float64) / 5
    assert torch.allclose(batch_delta(keys, residuals, None, weight=1.0), expected_i,
                          atol=1e-12)


def test_without_preserved_keys_each_fact_gets_its_residual_exactly():
    g = torch.Generator().manual_seed(0)
    keys, residuals = torch.randn(3, 5, generator=g), torch.randn(3, 4, generator=g)
    delta = batch_delta(keys, residuals, None, weight=1e-10)  # (d_model 4, d_ff 5)
    assert torch.allclose(keys.double() @ delta.T, residuals.double(), atol=1e-6)
    with pytest.raises(LetheError, match="singular"):
        batch_delta(keys, residuals, torch.zeros(5, 5), weight=1.0)


def test_the_residual_is_spread_over_the_layers_left():
    r = torch.tensor([6.0, -3.0])
    assert torch.equal(spread(r, 0, 3), r / 3) and torch.equal(spread(r, 1, 3), r / 2)
    assert torch.equal(spread(r, 2, 3), r)  # the last layer takes all that is still missing
    assert default_layers(4) == (0, 1) and default_layers(2) == (0,)
    assert default_layers(28) == (5, 6, 7, 8)


def test_config_errors():
    with pytest.raises(LetheError, match="edits `layers`"):
        MemitConfig(layer=1)
    with pytest.raises(LetheError, match="distinct"):
        MemitConfig(layers=(1, 1))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_memit_writes_the_facts_into_every_layer_and_restores(arch, tok, facts, corpus):
    model = getattr(edit_toy, arch)(tok)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = facts[0]  # three facts at once
    cfg = MemitConfig(layers=(1, 2), objective="fact_erasure", context_lengths=((3, 2),),
                      v_steps=5, v_lr=0.5, clamp_norm_factor=10.0, use_covariance=False,
                      update_weight=1e-8, update_key="mean")
    record = edit_model(model, tok, rows, cfg, corpus)
    assert model.training  # put back as it was
    changed = sorted(k for k, v in model.state_dict().items() if not torch.equal(v, before[k]))
    assert changed == sorted(f"{m}.weight" for m in record.modules) and len(changed) == 2
    for name in changed:  # Δ = R Kᵀ A⁻¹: rank at most the number of facts
        diff = (model.state_dict()[name] - before[name]).double()
        assert torch.linalg.matrix_rank(diff, rtol=1e-6) <= len(rows)
    log = record.layer_log
    # the first layer writes half of what is missing (two layers), so about half is left;
    # the top layer's update then adds exactly the rest to h^L: with λ ≈ 0, Δ K = R, and the
    # top layer's keys do not depend on its own weight. Exact only when h^L is read over the
    # same context rows the keys are averaged over (update_key "mean"); the default "prompt"
    # (MEMIT's code: keys over contexts, z at the bare prompt) leaves the difference between
    # the bare prompt's key and the mean key
    assert log[0]["missing_norm"] > 0 and log[1]["missing_norm"] < 0.9 * log[0]["missing_norm"]
    assert log[-1]["after"] and log[-1]["missing_norm"] < 1e-3 * log[0]["missing_norm"], log
    assert record.summary()["n_facts"] == 3 and all(d > 0 for d in record.deltas)
    restore(model, record)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_memit_last_block_and_fact_checks_come_first(tok, facts):
    model = edit_toy.llama(tok, layers=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(LetheError, match="last block"):
        edit_model(model, tok, facts[0], MemitConfig(layers=(0, 1), use_covariance=False))
    with pytest.raises(LetheError, match="must contain exactly one"):
        edit_model(model, tok, [dict(facts[0][0], prompt="no placeholder")],
                   MemitConfig(layers=(0,), use_covariance=False))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
