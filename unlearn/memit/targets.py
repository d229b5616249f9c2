"""z_i: where each fact's hidden state at the last edited layer L must go, and where it is.

MEMIT (Sec. 4.2, Eq. 16; Alg. 1 line 3) fits one vector per fact at the top of the layer range:
z_i = h_i^L + δ_i, with δ_i added to the residual stream at the subject's last token and
optimised so the prompts follow the objective (ROME's Eq. 4 loss: the objective term, KL on
the "{} is a" prompts, weight decay and the norm clamp relative to ‖h_i^L‖). Adding δ to the
output of block L's down-projection adds it to the block's output (the residual stream), so
ROME's value step (`unlearn.rome.values.optimise_value`) does it with `v_orig = h_i^L`.

`hidden_at_subject` reads h^L on the current model: after lower layers are edited, what is
still missing at L is z_i − h_i^L (Alg. 1 line 7).
"""

from __future__ import annotations

from typing import Sequence

import torch

from lethe.lens import capture_blocks
from lethe.lm import model_device, pad_right
from unlearn.rome.prompts import PromptRow


@torch.no_grad()
def hidden_at_subject(model, lens_layout, layer: int, rows: Sequence[Sequence[PromptRow]],
                      pad_id: int, batch_size: int = 32) -> torch.Tensor:
    """(n, d_model) float32: block `layer`'s output at the subject's last token, averaged over
    each fact's rows."""
    device = model_device(model)
    flat = [r for fact in rows for r in fact]
    out = []
    for start in range(0, len(flat), batch_size):
        chunk = flat[start:start + batch_size]
        ids, mask = pad_right([r.ids for r in chunk], pad_id, device)
        with capture_blocks(model, lens_layout, [layer]) as store:
            model(input_ids=ids, attention_mask=mask)
        idx = torch.tensor([r.subject_index for r in chunk], device=device)
        out.append(store[layer][torch.arange(len(chunk), device=device), idx].float())
    hidden = torch.cat(out)  # (sum of rows, d_model)
    return torch.stack([c.mean(0) for c in hidden.split([len(f) for f in rows])])
