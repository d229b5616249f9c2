"""ROME-style edits with deletion objectives (an edit is not a loss, so it is not in methods/).

One math step per file: keys.py (k*), covariance.py (C, cached), values.py (v*),
objectives.py (what v* is optimised for), update.py (rank-one ΔW), edit.py (many facts,
restore). Entry point: `edit_model(model, tok, facts, EditConfig(...), corpus) -> EditRecord`.
"""

from unlearn.rome.hparams import EditConfig

__all__ = ["EditConfig", "edit_model", "apply_edits", "restore", "EditRecord"]


def __getattr__(name):  # keep `import unlearn.rome` light: torch-heavy modules load on use
    if name in ("edit_model", "apply_edits", "restore", "EditRecord"):
        from unlearn.rome import edit

        return getattr(edit, name)
    raise AttributeError(name)
