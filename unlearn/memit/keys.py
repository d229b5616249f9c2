"""K: every fact's key at one layer, for the batch update (MEMIT Alg. 1, "k_i^l").

As ROME's k* (Eq. 3), each fact's key is the down-projection's input at the subject's last
token averaged over the context templates, but read for all facts in one batched pass, and at
every layer on the model as the lower layers have already been edited (MEMIT's code does the
same: a lower layer's update changes the keys above it).
"""

from __future__ import annotations

from typing import Sequence

import torch

from unlearn.rome.keys import keys_at_subject
from unlearn.rome.prompts import PromptRow


def fact_keys(model, module, rows: Sequence[Sequence[PromptRow]], pad_id: int) -> torch.Tensor:
    """(n, d_ff) float32: row i = mean over rows[i] of the key at the subject's last token."""
    flat = [r for fact in rows for r in fact]
    keys = keys_at_subject(model, module, flat, pad_id)  # (sum of rows, d_ff)
    sizes = [len(fact) for fact in rows]
    return torch.stack([chunk.mean(0) for chunk in keys.split(sizes)])
