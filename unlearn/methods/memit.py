"""MEMIT batch deletion as an `unlearn run` method: `method: {name: memit, layers: [0, 1]}`.

Like `rome`, an edit, not a loss: every fact of the request is written at once into the MLP
down-projections of a layer range in closed form (unlearn/memit/, Meng et al. 2023, Eq. 14 and
Alg. 1) with one of ROME's deletion objectives (Patil, Hase & Bansal 2024). The request's rows
are CounterFact-style facts; the covariance C of each layer comes from ROME's cache (default
corpus: the run's `data.source`, config `cov_config`, split `cov_split`).
"""

from dataclasses import dataclass, fields, replace

from unlearn.memit.hparams import MemitConfig
from unlearn.methods import MethodConfig, register
from unlearn.methods.rome import rome_reads


@dataclass(frozen=True)
class MemitMethodConfig(MemitConfig, MethodConfig):
    """Every MemitConfig field (unlearn/memit/hparams.py, unlearn/rome/hparams.py) + `name`."""

    name: str = "memit"


@register("memit", MemitMethodConfig, kind="edit", reads=rome_reads)
def memit_edit(model, tokenizer, rows, cfg: MemitMethodConfig, data_source: str) -> dict:
    """MEMIT: all facts at once across a layer range (closed-form batch update); not a loss."""
    from unlearn.memit.edit import edit_model

    edit_cfg = MemitConfig(**{f.name: getattr(cfg, f.name) for f in fields(MemitConfig)})
    if edit_cfg.use_covariance and edit_cfg.cov_dataset is None:
        edit_cfg = replace(edit_cfg, cov_dataset=data_source)
    return edit_model(model, tokenizer, list(rows), edit_cfg).summary()
