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
    """Mean next-token negative log-likelihood over all unmasked tokens of the batch (scalar)."""
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    logp, mask = token_logprobs(logits, part["labels"])
    return -logp.sum() / mask.sum().clamp(min=1)
