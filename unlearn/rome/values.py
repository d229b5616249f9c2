"""v*: the value the edited memory should return for k*.

ROME Eq. 4 (Meng et al. 2022): find a vector z for the down-projection's output at the
subject's last token such that the rewriting prompts produce the wanted answer, while the
"{subject} is a" prompts keep their next-token distribution (essence drift):

    v* = v_orig + δ,   δ = argmin  L_obj(δ) + λ_KL · KL(P_δ[· | p'] || P[· | p'])
                                  + λ_wd · ||δ||² / ||v_orig||²

with v_orig = W k + b the unedited output at the key the update will be exact for (k*, or the
bare prompt's key; EditConfig.update_key), so the update's residual v* − W k − b is δ itself.
δ is added at the subject-last position of every prompt, optimised with Adam, and clamped
after each step to ||δ|| ≤ clamp_norm_factor · ||v_orig||. L_obj is the objective's term
(objectives.py): ROME's NLL of a target, or a deletion objective (Patil et al. 2024).
The KL prompts are scored at their last token (ROME Eq. 4's P[x | p']).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Sequence

import torch

from lethe.lens import capture_blocks, decode
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


def optimise_value(model, tok, module, lens_layout, answer: str,
                   rewrite_rows: Sequence[PromptRow], kl_rows: Sequence[PromptRow],
                   k_update: torch.Tensor, objective: Objective, cfg,
                   defense_layers: Sequence[int] = ()) -> ValueResult:
    device = model_device(model)
    weight = module.weight
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
    n_rw, n_kl = len(rewrite_rows), len(kl_rows)
    all_rows = torch.arange(n_rw + n_kl, device=device)
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
    first_pos = ans_pos[rw_rows, lead]  # (R,) the position predicting the first content token
    first_tok = ans_tok[rw_rows, lead]  # (R,)
    kl_rows_idx = torch.arange(n_rw, n_rw + n_kl, device=device)
    kl_pos = torch.tensor([len(r.ids) - 1 for r in kl_rows], device=device, dtype=torch.long)

    with torch.no_grad():
        v_orig = module(k_update.to(device=device, dtype=weight.dtype)[None]).float()[0]
    delta = torch.zeros_like(v_orig, requires_grad=True)  # (d_model,)
    opt = torch.optim.Adam([delta], lr=cfg.v_lr)
    max_norm = cfg.clamp_norm_factor * v_orig.norm()
    result = ValueResult(v_orig, v_orig, delta.detach())
    kl_init = None
    lens_cm = (lambda: capture_blocks(model, lens_layout, defense_layers)) \
        if objective.uses_lens else (lambda: nullcontext({}))

    with frozen(model), torch.enable_grad(), add_at_positions(module, all_rows, lookup, delta):
        for step in range(cfg.v_steps):
            with lens_cm() as store:
                logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
            ans_logits = logits[rw_rows[:, None], ans_pos].float()  # (R, A, V)
            ans_logp = torch.log_softmax(ans_logits, -1).gather(-1, ans_tok[..., None])[..., 0]
            lens = None
            if objective.uses_lens:
                hidden = torch.stack([store[layer][rw_rows, first_pos]
                                      for layer in defense_layers])  # (L, R, D)
                lens = decode(model, lens_layout, hidden).float()  # (L, R, V)
            batch = ObjectiveBatch(ans_logp * ans_mask, ans_mask, first_tok, lens)
            term, logs = objective.loss(batch, cfg)
            loss = term
            if n_kl:
                kl_logp = torch.log_softmax(logits[kl_rows_idx, kl_pos].float(), -1)  # (K, V)
                if kl_init is None:
                    kl_init = kl_logp.detach()
                kl = (kl_logp.exp() * (kl_logp - kl_init)).sum(-1).mean()
                loss = loss + cfg.kl_factor * kl
                logs["kl"] = kl.item()
            decay = delta.pow(2).sum() / v_orig.pow(2).sum().clamp_min(1e-12)
            loss = loss + cfg.weight_decay * decay
            result.losses.append(loss.item())
            result.logs = {**logs, "step": step}
            if objective.early_stop and term.item() < cfg.v_stop_loss:
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
