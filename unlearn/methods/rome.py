"""ROME-style deletion as an `unlearn run` method: `method: {name: rome, objective: ...}`.

An edit is not a loss: this method rewrites one MLP down-projection per fact in closed form
(unlearn/rome/, Meng et al. 2022) with a deletion objective from Patil, Hase & Bansal (2024).
The request's rows are CounterFact-style facts (`data.forget: {config: facts, split: forget}`
on a Lethe world). The covariance C is streamed from `cov_dataset` (default: the run's
`data.source`, config `cov_config`, split `cov_split`) and cached on disk.
"""

from dataclasses import dataclass, replace

from unlearn.methods import MethodConfig, register
from unlearn.rome.hparams import EditConfig


@dataclass(frozen=True)
class RomeConfig(EditConfig, MethodConfig):
    """Every EditConfig field (unlearn/rome/hparams.py documents them) plus `name`."""

    name: str = "rome"


def rome_reads(cfg: RomeConfig, data_source: str, forget) -> list[tuple]:
    """What an edit reads: each request's facts (every field a fact needs) and, with
    use_covariance, the covariance corpus (read unless C is already cached)."""
    from unlearn.rome.prompts import REQUIRED

    out = [(data_source, forget.config, forget.split, REQUIRED)]
    if cfg.use_covariance:
        out.append((cfg.cov_dataset or data_source, cfg.cov_config, cfg.cov_split,
                    (cfg.cov_column,)))
    return out


@register("rome", RomeConfig, kind="edit", reads=rome_reads)
def rome_edit(model, tokenizer, rows, cfg: RomeConfig, data_source: str) -> dict:
    """ROME edits (closed-form rank-one updates) with a deletion objective; not a loss."""
    from unlearn.rome.edit import edit_model

    fields = {f: getattr(cfg, f) for f in EditConfig.__dataclass_fields__}
    edit_cfg = EditConfig(**fields)
    if edit_cfg.use_covariance and edit_cfg.cov_dataset is None:
        edit_cfg = replace(edit_cfg, cov_dataset=data_source)
    record = edit_model(model, tokenizer, list(rows), edit_cfg)
    return record.summary()
