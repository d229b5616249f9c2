"""MEMIT: many facts edited at once, across a range of layers (Meng et al. 2023, "Mass-Editing
Memory in a Transformer", Sec. 4, Eq. 14, Alg. 1), with ROME's deletion objectives.

One math step per file: hparams.py (MemitConfig), targets.py (z_i: where the residual stream
at the last edited layer must go for each fact, and where it is now), keys.py (K: every fact's
key at a layer), update.py (Eq. 14: Δ = R Kᵀ (λC + K Kᵀ)⁻¹, and the residual spread over the
remaining layers), edit.py (Alg. 1 over the layers, the record, restore). Prompts, context
templates, the covariance cache, objectives and the value optimisation are ROME's
(unlearn/rome/). Entry point: `edit_model(model, tok, facts, MemitConfig(...), corpus)`.
"""

from unlearn.memit.hparams import MemitConfig

__all__ = ["MemitConfig", "edit_model", "MemitRecord"]


def __getattr__(name):  # keep `import unlearn.memit` light: torch-heavy modules load on use
    if name in ("edit_model", "MemitRecord"):
        from unlearn.memit import edit

        return getattr(edit, name)
    raise AttributeError(name)
