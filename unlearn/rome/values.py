"""v*: the value the edited memory should return for k*.

ROME Eq. 4 (Meng et al. 2022): find a vector z for the down-projection's output at the
subject's last token such that the rewriting prompts produce the wanted answer, while the
"{subject} is a" prompts keep their next-token distribution (essence drift):

    v* = v_orig + δ,   δ = argmin  L_obj(δ) + λ_KL · KL(P_δ[· | p'] || P[· | p'])
                                  + λ_wd · ||δ||^p / ||v_orig||²

with v_orig = W k + b the unedited output at the key the update will be exact for (k*, or the
bare prompt's key; EditConfig.update_key), so the update's residual v* − W k − b is δ itself.
δ is added at the subject-last position of every prompt, optimised with Adam, and clamped
after each step to ||δ|| ≤ clamp_norm_factor · ||v_orig||. L_obj is the objective's term
(objectives.py): ROME's NLL of a target, or a deletion objective (Patil et al. 2024).

As in ROME's released code (kmeng01/rome rome/compute_v.py) by default: p = 1 (the decay is
||δ|| / ||v_orig||², not squared; EditConfig.weight_decay_power), the KL prompts are compared
at the subject's last token (`lookup_idxs`; EditConfig.kl_position "last" reads them at the
prompt's last token, Eq. 4's P[x | p']), and target-NLL objectives stop once the *total* loss
is below v_stop_loss (EditConfig.stop_on).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Sequence

import torch

from lethe.lens import capture_hidden_states, decode
from lethe.lm import encode_pair, leading_space_tokens, model_device, pad_id, pad_right
from unlearn.rome.objectives import Objective, ObjectiveBatch
from unlearn.rome.prompts import PromptRow

log = logging.getLogger(__name__)


@dataclass
class ValueResult:
    v_star: torch.Tensor  # (d_model,) float32: v_orig + δ
    v_orig: torch.Tensor  # (d_model,) float32: W k + b at the update key
    delta: torch.Tensor  # (d_model,) float32
    losses: list[float] = field(default_factory=list)  # total loss at each step
    logs: dict = field(default_factory=dict)  # the objective's terms at the last step


@contextmanager
def add_at_positions(module, rows: torch.Tensor, positions: torch.Tensor, delta: torch.Tensor):
    """Add `delta` (d_model,) to `module`'s output (B, T, d_model) at (rows[i], positions[i])."""
    def hook(_mod, _inp, out):
        add = delta.to(out.dtype).expand(len(rows), -1)
        return out.index_put((rows, positions), add, accumulate=True)
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def frozen(model):
    """Eval mode and no parameter gradients for the duration (restored after)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


@dataclass
class _Batch:
    """The fixed tensors of one v* optimisation: R rewriting rows, then K KL rows."""

    ids: torch.Tensor  # (R + K, T) right-padded prompt (+ answer) ids
    mask: torch.Tensor  # (R + K, T)
    lookup: torch.Tensor  # (R + K,) the subject's last position in each row (where δ is added)
    ans_pos: torch.Tensor  # (R, A) the position predicting each answer token
    ans_tok: torch.Tensor  # (R, A) the answer tokens
    ans_mask: torch.Tensor  # (R, A) 1 on scored answer tokens (not leading whitespace)
    first_pos: torch.Tensor  # (R,) the position predicting the first content token
    first_tok: torch.Tensor  # (R,)
    kl_pos: torch.Tensor  # (K,) where each KL prompt's distribution is read (kl_position)

    @property
    def n_rw(self) -> int:
        return self.ans_pos.shape[0]


def decay_term(delta: torch.Tensor, v_orig: torch.Tensor, power: int) -> torch.Tensor:
    """||δ||^p / ||v_orig||² (scalar): p = 1 is ROME's code, p = 2 a squared L2."""
    return delta.norm().pow(power) / v_orig.pow(2).sum().clamp_min(1e-12)


def kl_positions(kl_rows: Sequence[PromptRow], where: str) -> list[int]:
    """Where each KL prompt is compared: its subject's last token ("subject", ROME's code) or
    its last token ("last", the next-token distribution of ROME Eq. 4)."""
    return [r.subject_index if where == "subject" else len(r.ids) - 1 for r in kl_rows]


def _batch(tok, answer: str, rewrite_rows: Sequence[PromptRow], kl_rows: Sequence[PromptRow],
           device, kl_position: str = "subject") -> _Batch:
    answers, leads = [], []
    for row in rewrite_rows:
        p_ids, a_ids = encode_pair(tok, row.text, answer)
        assert tuple(p_ids) == row.ids, "prompt ids differ between encode_pair and make_row"
        answers.append(a_ids)
        # whitespace-only leading answer tokens (a tokenizer that isolates spaces) are read
        # but not scored: the objective and the defenses act on the first content token
        leads.append(leading_space_tokens(tok, a_ids))
    seqs = [list(r.ids) + a for r, a in zip(rewrite_rows, answers)] + [list(r.ids) for r in kl_rows]
    ids, mask = pad_right(seqs, pad_id(tok), device)
    n_rw = len(rewrite_rows)
    lookup = torch.tensor([r.subject_index for r in (*rewrite_rows, *kl_rows)], device=device)
    width = max(len(a) for a in answers)
    ans_pos = torch.zeros((n_rw, width), dtype=torch.long)  # position predicting each token
    ans_tok = torch.zeros((n_rw, width), dtype=torch.long)
    ans_mask = torch.zeros((n_rw, width))
    for i, (row, a) in enumerate(zip(rewrite_rows, answers)):
        ans_pos[i, :len(a)] = torch.arange(len(row.ids) - 1, len(row.ids) + len(a) - 1)
        ans_tok[i, :len(a)] = torch.tensor(a)
        ans_mask[i, leads[i]:len(a)] = 1.0
    ans_pos, ans_tok, ans_mask = ans_pos.to(device), ans_tok.to(device), ans_mask.to(device)
    rw_rows = torch.arange(n_rw, device=device)
    lead = torch.tensor(leads, device=device)
    kl_pos = torch.tensor(kl_positions(kl_rows, kl_position), device=device, dtype=torch.long)
    return _Batch(ids, mask, lookup, ans_pos, ans_tok, ans_mask, ans_pos[rw_rows, lead],
                  ans_tok[rw_rows, lead], kl_pos)


def optimise_value(model, tok, module, lens_layout, answer: str,
                   rewrite_rows: Sequence[PromptRow], kl_rows: Sequence[PromptRow],
                   k_update: torch.Tensor | None, objective: Objective, cfg,
                   defense_layers: Sequence[int] = (),
                   v_orig: torch.Tensor | None = None) -> ValueResult:
    """δ added to `module`'s output at the subject's last token (Eq. 4). `v_orig` scales the
    clamp and the weight decay: by default the module's output W k + b at `k_update` (ROME);
    MEMIT passes the residual stream at its last layer instead (its z_i = h_i^L + δ_i)."""
    device = model_device(model)
    b = _batch(tok, answer, rewrite_rows, kl_rows, device, cfg.kl_position)
    all_rows = torch.arange(len(b.lookup), device=device)
    if v_orig is None:
        with torch.no_grad():
            v_orig = module(k_update.to(device=device, dtype=module.weight.dtype)[None]
                            ).float()[0]
    v_orig = v_orig.to(device=device, dtype=torch.float32)
    delta = torch.zeros_like(v_orig, requires_grad=True)  # (d_model,)
    opt = torch.optim.Adam([delta], lr=cfg.v_lr)
    max_norm = cfg.clamp_norm_factor * v_orig.norm()
    result = ValueResult(v_orig, v_orig, delta.detach())
    kl_init: list = [None]  # the KL prompts' initial log-probs, set at step 0
    with frozen(model), torch.enable_grad(), add_at_positions(module, all_rows, b.lookup, delta):
        for step in range(cfg.v_steps):
            term, logs, logits = _objective_term(model, lens_layout, b, objective, cfg,
                                                 defense_layers)
            loss = term + _kl_term(logits, b, cfg, kl_init, logs)
            loss = loss + cfg.weight_decay * decay_term(delta, v_orig, cfg.weight_decay_power)
            result.losses.append(loss.item())
            result.logs = {**logs, "step": step}
            stop_value = loss if cfg.stop_on == "total" else term
            if objective.early_stop and stop_value.item() < cfg.v_stop_loss:
                break
            if step == cfg.v_steps - 1:
                break
            opt.zero_grad()
            loss.backward()
            if step == 0 and (delta.grad is None or not bool(delta.grad.any())):
                # δ reaches no scored position (or the objective is already met exactly):
                # Adam would leave it at 0 and the edit would change nothing
                log.warning("v* optimisation for %r gets an all-zero gradient at step 0; the "
                            "edit will be a no-op", answer)
            opt.step()
            with torch.no_grad():
                norm = delta.norm()
                if norm > max_norm:
                    delta.mul_(max_norm / norm)
    final = delta.detach().clone()
    result.delta = final
    result.v_star = v_orig + final
    return result


def _objective_term(model, lens_layout, b: _Batch, objective: Objective, cfg,
                    defense_layers: Sequence[int]):
    """One forward of every row (δ added by the hook): (L_obj, logs, logits (B, T, V))."""
    store_cm = capture_hidden_states(model, lens_layout, defense_layers) \
        if objective.uses_lens else nullcontext({})
    with store_cm as store:
        logits = model(input_ids=b.ids, attention_mask=b.mask).logits  # (B, T, V)
    rw_rows = torch.arange(b.n_rw, device=logits.device)
    ans_logits = logits[rw_rows[:, None], b.ans_pos].float()  # (R, A, V)
    ans_logp = torch.log_softmax(ans_logits, -1).gather(-1, b.ans_tok[..., None])[..., 0]
    lens = None
    if objective.uses_lens:
        hidden = torch.stack([store[layer][rw_rows, b.first_pos]
                              for layer in defense_layers])  # (L, R, D)
        lens = decode(model, lens_layout, hidden).float()  # (L, R, V)
    term, logs = objective.loss(ObjectiveBatch(ans_logp * b.ans_mask, b.ans_mask, b.first_tok,
                                               lens), cfg)
    return term, logs, logits


def _kl_term(logits, b: _Batch, cfg, kl_init: list, logs: dict):
    """λ_KL · KL(P_δ[· | p'] || P[· | p']) at b.kl_pos of the KL prompts (0 without any)."""
    n_kl = len(b.kl_pos)
    if not n_kl:
        return 0
    rows = torch.arange(b.n_rw, b.n_rw + n_kl, device=logits.device)
    kl_logp = torch.log_softmax(logits[rows, b.kl_pos].float(), -1)  # (K, V)
    if kl_init[0] is None:
        kl_init[0] = kl_logp.detach()
    kl = (kl_logp.exp() * (kl_logp - kl_init[0])).sum(-1).mean()
    logs["kl"] = kl.item()
    return cfg.kl_factor * kl
