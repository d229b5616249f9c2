"""k*: the key the edited memory must respond to.

ROME Eq. 3 (Meng et al. 2022): k* = (1/N) Σ_j k(x_j + s), the input of the MLP down-projection
at the subject's last token, averaged over N context templates x_j. The key is what the
down-projection multiplies: k ∈ R^{d_ff}, the post-activation (GPT-2: gelu(c_fc(x)); Llama:
silu(gate(x)) ⊙ up(x)).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import torch

from lethe.lm import model_device, pad_right
from unlearn.rome.prompts import PromptRow


@contextmanager
def capture_input(module):
    """Record the input (B, T, d_ff) of `module` on each forward pass."""
    store: dict[str, torch.Tensor] = {}

    def hook(_mod, args):
        store["in"] = args[0]
    handle = module.register_forward_pre_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


@torch.no_grad()
def keys_at_subject(model, module, rows: Sequence[PromptRow], pad_id: int,
                    batch_size: int = 32) -> torch.Tensor:
    """(N, d_ff) down-projection inputs at each row's subject-last token."""
    device = model_device(model)
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ids, mask = pad_right([r.ids for r in chunk], pad_id, device)
        with capture_input(module) as store:
            model(input_ids=ids, attention_mask=mask)
        idx = torch.tensor([r.subject_index for r in chunk], device=device)
        out.append(store["in"][torch.arange(len(chunk), device=device), idx].float())
    return torch.cat(out)


def compute_key(model, module, rows: Sequence[PromptRow], pad_id: int) -> torch.Tensor:
    """k* (d_ff,), float32: the mean key over the context templates (ROME Eq. 3)."""
    return keys_at_subject(model, module, rows, pad_id).mean(0)
