"""The 2024-25 methods (DPO / IdkDPO / AltPO, UNDIAL, WGA, SatImp, CE-U, PDU) against values
computed by hand, position by position, from the tiny model's logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.methods.test_losses import loss_of, mean_nll, seq_nll
from unlearn.data import LMCollator, PairedCollator, PairedDataset
from unlearn.methods import get_method
from unlearn.methods.reference import make_reference


def positions(model, part):
    """[(logits row (V,), target id)] of every scored position, in order, by explicit loops."""
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    out = []
    for i in range(part["input_ids"].shape[0]):
        row = []
        for t in range(part["input_ids"].shape[1] - 1):
            if part["labels"][i, t + 1] != -100:
                row.append((logits[i, t].float(), int(part["labels"][i, t + 1])))
        out.append(row)
    return out


def perturb(model, scale=0.05, seed=3):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g))


def pref_batch(forget, retain, alternate):
    ds = PairedDataset(forget[:4], retain[:4], alternate=alternate[:4])
    return PairedCollator(0)([ds[i] for i in range(4)])


def test_prompt_tokens_are_read_but_never_trained_on():
    batch = LMCollator(0)([{"input_ids": [1, 5, 6, 7, 8], "prompt_len": 3},
                           {"input_ids": [1, 9, 10], "prompt_len": 1}])
    assert batch["labels"].tolist() == [[-100, -100, -100, 7, 8], [-100, 9, 10, -100, -100]]
    assert "prompt_len" not in batch


@torch.no_grad()
def test_dpo_family_matches_hand_formula(model, forget, retain):
    alternate = [{"input_ids": [1] + list(range(20, 20 + n))} for n in (3, 5, 4, 6)]
    batch = pref_batch(forget, retain, alternate)
    lose, _ = seq_nll(model, batch["forget"])  # summed NLLs (B,)
    win, _ = seq_nll(model, batch["alternate"])
    lose_ref = [-s + d for s, d in zip(lose.tolist(), (1.0, -2.0, 0.5, 3.0))]
    win_ref = [-s + d for s, d in zip(win.tolist(), (-1.0, 0.0, 2.0, -0.5))]
    batch["forget"]["ref_logp"] = torch.tensor(lose_ref)
    batch["alternate"]["ref_logp"] = torch.tensor(win_ref)
    beta, alpha, gamma = 0.5, 0.7, 1.3
    terms = []
    for lw, rw, ll, rl in zip((-win).tolist(), win_ref, (-lose).tolist(), lose_ref):
        margin = (lw - rw) - (ll - rl)
        terms.append(-math.log1p(math.exp(-beta * margin)))  # log σ(β·margin)
    expected = gamma * (-(2 / beta) * sum(terms) / 4) + alpha * mean_nll(model, batch["retain"])
    for name in ("dpo", "altpo"):
        loss, _ = loss_of(name, model, batch, beta=beta, alpha=alpha, gamma=gamma)
        assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss, logs = loss_of("idk_dpo", model, batch, beta=beta, alpha=alpha, gamma=gamma)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # at θ = ref the preference term is (2/β)·log 2, whatever the responses
    batch["forget"]["ref_logp"], batch["alternate"]["ref_logp"] = -lose, -win
    _, logs = loss_of("dpo", model, batch, beta=beta)
    assert logs["dpo"] == pytest.approx(2 / beta * math.log(2), rel=1e-5)


@torch.no_grad()
def test_undial_is_ce_to_the_adjusted_teacher(model, batch):
    ref = make_reference(model, get_method("undial"), lora_enabled=False)
    teacher = positions(model, batch["forget"])  # reference logits, before θ moves
    perturb(model)
    student = positions(model, batch["forget"])
    beta, ces = 4.0, []
    for t_row, s_row in zip(teacher, student):
        for (z_ref, y), (z, _) in zip(t_row, s_row):
            z_adj = z_ref.clone()
            z_adj[y] -= beta
            q = torch.softmax(z_adj, -1)
            ces.append(-(q * torch.log_softmax(z, -1)).sum().item())
    expected = sum(ces) / len(ces)
    loss, _ = loss_of("undial", model, batch, ref=ref, beta=beta, gamma=1.0, alpha=0.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss, _ = loss_of("undial", model, batch, ref=ref, beta=beta, gamma=2.0, alpha=0.5)
    assert loss.item() == pytest.approx(2 * expected + 0.5 * mean_nll(model, batch["retain"]),
                                        rel=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("name", ["wga", "satimp"])
def test_confidence_weighted_ascent(name, model, batch):
    b1, b2 = 2.0, 1.5
    terms = []
    for row in positions(model, batch["forget"]):
        for z, y in row:
            ce = -torch.log_softmax(z, -1)[y].item()
            p = math.exp(-ce)
            w = p ** b1 if name == "wga" else p ** b1 * (1 - p) ** b2
            terms.append(w * ce)
    forget = -sum(terms) / len(terms)
    cfg = {"beta": b1} if name == "wga" else {"beta1": b1, "beta2": b2}
    loss, logs = loss_of(name, model, batch, gamma=0.8, alpha=0.3, **cfg)
    assert logs[name] == pytest.approx(forget, rel=1e-5)
    assert loss.item() == pytest.approx(0.8 * forget + 0.3 * mean_nll(model, batch["retain"]),
                                        rel=1e-5)


def test_weighted_ascent_weights_carry_no_gradient(model, batch):
    # d/dθ of −p^β·CE with p detached is −p^β·dCE/dθ: at β = 0 it is plain gradient ascent
    model.zero_grad()
    loss_of("wga", model, batch, beta=0.0, alpha=0.0)[0].backward()
    wga = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    forget = batch["forget"]
    logits = model(input_ids=forget["input_ids"], attention_mask=forget["attention_mask"]).logits
    ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), forget["labels"][:, 1:].flatten(),
                         ignore_index=-100)
    (-ce).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(wga, model.parameters()))


@torch.no_grad()
def test_ce_u_removes_the_true_token_and_skips_the_first(model, batch):
    ces = []
    for row in positions(model, batch["forget"]):
        for z, y in row[2:]:  # ignore_first_n = 2
            z_q = z.clone()
            z_q[y] = float("-inf")
            q = torch.softmax(z_q, -1)
            assert q[y] == 0
            ces.append(-(q * torch.log_softmax(z, -1)).sum().item())
    loss, _ = loss_of("ce_u", model, batch, ignore_first_n=2)
    assert loss.item() == pytest.approx(sum(ces) / len(ces), rel=1e-5)


@torch.no_grad()
def test_pdu_lagrangian_and_dual_ascent(model, batch):
    from unlearn.methods.pdu import PDUConfig, pdu_state

    margins = [((z.max() - z.mean()) ** 2).item() for row in positions(model, batch["forget"])
               for z, _ in row]
    forget, retain = sum(margins) / len(margins), mean_nll(model, batch["retain"])
    cfg = PDUConfig(gamma=0.5, alpha=2.0, retain_eps=retain - 0.25, dual_step_size=3.0,
                    dual_warmup_steps=1)
    state = pdu_state(cfg)
    method = get_method("pdu")
    loss, logs = method.loss(model, batch, cfg, None, state=state)
    assert loss.item() == pytest.approx(0.5 * forget + 2.0 * 0.25, rel=1e-5)
    assert state.lam == 2.0  # warm-up call: λ stays
    method.loss(model, batch, cfg, None, state=state)
    assert state.lam == pytest.approx(2.0 + 3.0 * 0.25, rel=1e-5)  # λ + η·(NLL − ε)
    loss, logs = method.loss(model, batch, cfg, None, state=state)
    assert logs["lambda"] == pytest.approx(2.75, rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * forget + 2.75 * 0.25, rel=1e-5)
    # ε from the first batch: NLL × (1 + margin); a satisfied constraint pulls λ down to 0
    state = pdu_state(PDUConfig(alpha=0.1, eps_margin=1.0))
    method.loss(model, batch, PDUConfig(alpha=0.1, eps_margin=1.0), None, state=state)
    assert state.eps == pytest.approx(2 * retain, rel=1e-5) and state.lam == 0.0
