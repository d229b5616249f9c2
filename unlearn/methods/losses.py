"""Pure helpers shared by the method losses. Shapes: B batch, T tokens, V vocabulary."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each next token and its mask.

    logits (B, T, V), labels (B, T) with -100 where ignored →
    (logp (B, T-1), mask (B, T-1)); position t scores labels[:, t+1] given tokens ≤ t.
    """
    shift_logits = logits[:, :-1, :].float()  # (B, T-1, V)
    shift_labels = labels[:, 1:]  # (B, T-1)
    mask = shift_labels != -100
    safe = shift_labels.masked_fill(~mask, 0)
    logp = torch.log_softmax(shift_logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def sequence_logprob(model, part: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-likelihood of each sequence and its token count: (B,), (B,)."""
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    logp, mask = token_logprobs(logits, part["labels"])
    return logp.sum(-1), mask.sum(-1)


def nll(model, part: dict) -> torch.Tensor:
    """Mean next-token negative log-likelihood over all unmasked tokens of the batch (scalar).

    A packed batch (`position_ids`, no attention mask: unlearn.data.PackedLMCollator) goes in
    without a mask and without a KV cache, so the model derives its block-diagonal mask."""
    if "position_ids" in part:
        logits = model(input_ids=part["input_ids"], position_ids=part["position_ids"],
                       use_cache=False).logits
    else:
        logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    logp, mask = token_logprobs(logits, part["labels"])
    return -logp.sum() / mask.sum().clamp(min=1)


def part_of(batch: dict, side: str, method: str) -> dict:
    """`batch[side]`, or a one-line error naming what the method needs."""
    from lethe.errors import LetheError

    if side not in batch:
        raise LetheError(f"method {method!r} needs a {side} set, but the batch has none "
                         f"(give the recipe a {side} dataset)")
    return batch[side]


def npo_term(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO forget loss (Zhang et al. 2024): −(2/β)·mean log σ(−β·(log π_θ − log π_ref)).

    logp, ref_logp (B,) summed sequence log-likelihoods. At θ = ref it equals (2/β)·log 2; as
    β → 0 it tends to (2/β)·log 2 + mean(logp − ref_logp), whose gradient is GA's (as the paper notes).
    """
    log_ratio = logp - ref_logp.to(logp.dtype)  # (B,)
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def ref_logprob(part: dict, ref, method: str) -> torch.Tensor:
    """Reference sequence log-likelihoods (B,): cached `ref_logp`, else one reference forward."""
    if "ref_logp" in part:
        return part["ref_logp"]
    if ref is not None:  # open-unlearning style: a reference forward every step (slower)
        return ref.sequence_logprob(part)
    from lethe.errors import LetheError

    raise LetheError(f"method {method!r} needs reference log-probs: run "
                     f"unlearn.methods.reference.precompute_ref_logp on the examples first")


def kl_ref_to_model(logits: torch.Tensor, ref_logits: torch.Tensor,
                    labels: torch.Tensor) -> torch.Tensor:
    """Mean over scored positions of KL(p_ref ‖ p_θ) of the next-token distributions (scalar).

    logits, ref_logits (B, T, V); labels (B, T). Position t is scored when labels[:, t+1] is not
    -100 (the positions NLL would score), so padding never counts. Both sides are log-softmaxed.
    """
    logq = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)  # (B, T-1, V) model
    logp = torch.log_softmax(ref_logits[:, :-1, :].float(), dim=-1)  # (B, T-1, V) reference
    # kl_div(input=log q, target=log p, log_target) = p·(log p − log q), summed over V
    kl = F.kl_div(logq, logp, reduction="none", log_target=True).sum(-1)  # (B, T-1)
    mask = labels[:, 1:] != -100  # (B, T-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


def _logits_and_ref(model, ref, part: dict, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's and the frozen reference's logits on a batch part, (B, T, V) each."""
    from lethe.errors import LetheError

    if ref is None:
        raise LetheError(f"{what} needs a reference model: build one with "
                         "unlearn.methods.reference.make_reference")
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    return logits, ref.logits(part)


def retain_kl(model, ref, part: dict) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) on a retain batch part, averaged over its scored tokens (scalar)."""
    logits, ref_logits = _logits_and_ref(model, ref, part, "a KL regulariser")
    return kl_ref_to_model(logits, ref_logits, part["labels"])


# ---------------------------------------------------------------------------------------------
# MUSE's released code (`method.reference_impl: muse_code`; never the default)
#
# swj0419/muse_bench baselines/baselines/iterative.py computes NPO's log-ratio and the KLR term
# on raw logits, element-wise over (batch, position, vocabulary), not on log-probabilities of
# the sequence; MUSE's published NPO/KLR rows come from that code. Its batches have no padding,
# so "every position" there is every real position here (attention_mask).


def _real(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask[..., None].to(like.dtype)  # (B, T, 1)


def muse_code_npo_term(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor,
                       beta: float) -> torch.Tensor:
    """−(2/β)·mean_{b,t,v} log σ(β·(z_ref − z_θ)) over real positions (MUSE's `npo`).

    logits, ref_logits (B, T, V) raw logits; mask (B, T)."""
    per = F.logsigmoid(beta * (ref_logits.float() - logits.float()))  # (B, T, V)
    real = _real(mask, per)
    return -(2.0 / beta) * (per * real).sum() / (real.sum() * per.shape[-1]).clamp(min=1)


def muse_code_kl(logits: torch.Tensor, ref_logits: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """F.kl_div(z_θ, z_ref, reduction='batchmean', log_target=True) on raw logits (MUSE's
    `klr`): Σ_{b,t,v} exp(z_ref)·(z_ref − z_θ) over real positions, divided by B."""
    ref = ref_logits.float()
    per = torch.exp(ref) * (ref - logits.float())  # (B, T, V)
    return (per * _real(mask, per)).sum() / per.shape[0]


def muse_code_simnpo_term(logits: torch.Tensor, mask: torch.Tensor, beta: float,
                          delta: float) -> torch.Tensor:
    """−(2/β)·mean_{b,t,v} log σ(β·(−z_θ − δ)) over real positions (OPTML-Group/Unlearn-Simple
    MUSE/baselines/baselines/iterative.py, `simnpo`)."""
    per = F.logsigmoid(beta * (-logits.float() - delta))  # (B, T, V)
    real = _real(mask, per)
    return -(2.0 / beta) * (per * real).sum() / (real.sum() * per.shape[-1]).clamp(min=1)


def muse_code_retain_kl(model, ref, part: dict) -> torch.Tensor:
    """MUSE's KLR term on a retain batch part (scalar)."""
    logits, ref_logits = _logits_and_ref(model, ref, part, "reference_impl muse_code")
    return muse_code_kl(logits, ref_logits, part["attention_mask"])


# ---------------------------------------------------------------------------------------------
# per-token pieces of the 2024-25 methods (UNDIAL, WGA, SatImp, CE-U, PDU)


def shifted(logits: torch.Tensor, labels: torch.Tensor):
    """(logits (B, T-1, V) in float32, targets (B, T-1), mask (B, T-1)): position t predicts
    labels[:, t+1]; masked targets are replaced by 0 so they can index safely."""
    targets = labels[:, 1:]
    mask = targets != -100
    return logits[:, :-1, :].float(), targets.masked_fill(~mask, 0), mask


def forward_shifted(model, part: dict):
    """`shifted` of the model's logits on a batch part."""
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    return shifted(logits, part["labels"])


def token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy −log p(target) of every position: logits (B, T, V), targets (B, T) → (B, T)."""
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is true (scalar; 0 if none)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def soft_ce(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """−Σ_v q_v log p_θ,v per position: logits (B, T, V), target_probs q (B, T, V) → (B, T)."""
    return -(target_probs * torch.log_softmax(logits, dim=-1)).sum(-1)


def weighted_ascent(model, part: dict, weight_fn) -> tuple[torch.Tensor, dict]:
    """−mean over scored tokens of w_t·CE_t, with w_t = weight_fn(p_t) computed without
    gradient from the model's probability p_t of the true token (WGA, SatImp)."""
    logits, targets, mask = forward_shifted(model, part)
    ce = token_ce(logits, targets)  # (B, T-1)
    weight = weight_fn(torch.exp(-ce.detach()))  # (B, T-1), no gradient through the weight
    loss = -masked_mean(weight * ce, mask)
    return loss, {"forget_nll": masked_mean(ce.detach(), mask).item(),
                  "forget_weight": masked_mean(weight, mask).item()}
