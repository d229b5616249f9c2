"""Edit many facts at once across a layer range (MEMIT Alg. 1), and undo it exactly.

    record = edit_model(model, tok, facts, MemitConfig(objective="fact_erasure"), corpus)
    ...                                   # evaluate / attack / save
    restore(model, record)                # bit-identical original weights

1. Plan: the facts, the layers (ascending; L = the highest) and every prompt are checked, as
   ROME checks its layer (`unlearn.rome.edit.plan_edit` at L).
2. C^l = E[k kᵀ] for every layer, from ROME's cache, *before* any edit (it describes the
   unedited model, as MEMIT's cached statistics do).
3. z_i = h_i^L + δ_i for every fact on the unedited model (targets.py; MEMIT Eq. 16 with the
   objective's loss instead of the new object's NLL).
4. For each layer l, lowest first: the facts' keys K^l and hidden states h^L on the current
   model; residuals R^l = (z − h^L) / (layers left) (Alg. 1); Δ^l = R Kᵀ (λC + K Kᵀ)⁻¹
   (Eq. 14, update.py); W^l += Δ^l. Activations are re-read after each layer ("because
   changing one layer will affect activations of downstream modules").
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Sequence

import torch
from tqdm.auto import tqdm

from lethe.errors import LetheError
from lethe.lm import pad_id
from unlearn.memit.hparams import MemitConfig, default_layers
from unlearn.memit.keys import fact_keys
from unlearn.memit.targets import hidden_at_subject
from unlearn.memit.update import batch_delta, spread
from unlearn.rome.contexts import context_templates
from unlearn.rome.covariance import get_covariance
from unlearn.rome.edit import plan_edit, restore, run_or_restore
from unlearn.rome.hparams import EditConfig
from unlearn.rome.model_layout import rewrite_target
from unlearn.rome.prompts import compose, fact_label, make_row
from unlearn.rome.update import apply_delta
from unlearn.rome.values import optimise_value

log = logging.getLogger(__name__)

__all__ = ["MemitRecord", "edit_model", "restore"]


@dataclass
class MemitRecord:
    config: MemitConfig
    layers: tuple[int, ...]
    modules: list[str]  # the rewritten modules, lowest layer first
    originals: dict[str, torch.Tensor]  # parameter name -> original tensor (CPU copy)
    deltas: list[float] = field(default_factory=list)  # ‖δ_i‖ per fact (step 3)
    losses: list[tuple[float, float]] = field(default_factory=list)  # per fact: first, last
    layer_log: list[dict] = field(default_factory=list)  # per layer: residual and update norms
    covariance: list[dict] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-able account of the edit (no tensors)."""
        return {"config": asdict(self.config), "layers": list(self.layers),
                "modules": self.modules, "n_facts": len(self.deltas),
                "delta_norms": self.deltas, "losses": self.losses, "per_layer": self.layer_log,
                "covariance": self.covariance, "contexts": self.contexts,
                "seconds": self.seconds}


@dataclass(frozen=True)
class _Plan:
    top: object  # ROME's EditPlan at the highest layer L (objective, layout, answers, ...)
    layers: tuple[int, ...]
    targets: list[tuple[str, torch.nn.Module, str]]  # (name, module, orientation) per layer


def _plan(model, tok, facts: list[dict], cfg: MemitConfig) -> _Plan:
    from lethe.lens import resolve_layers
    from unlearn.rome.model_layout import resolve_layout

    layout = resolve_layout(model, cfg.rewrite_module, cfg.blocks_module, cfg.final_norm_module)
    wanted = cfg.layers if cfg.layers is not None else default_layers(layout.n_layers)
    layers = tuple(sorted(resolve_layers(wanted, layout.n_layers, "MEMIT layer")))
    if len(set(layers)) != len(layers):
        raise LetheError(f"MEMIT layers {wanted} name the same block twice")
    base = {f.name: getattr(cfg, f.name) for f in fields(EditConfig)}
    top = plan_edit(model, tok, facts, EditConfig(**{**base, "layer": layers[-1]}))
    return _Plan(top, layers, [rewrite_target(model, layout, layer) for layer in layers])


def edit_model(model, tok, facts: Sequence[dict], cfg: MemitConfig, corpus=None) -> MemitRecord:
    """Edit `model` in place so every fact follows `cfg.objective`, all facts at once.

    corpus: texts or a dataset source for the covariance (as ROME's `edit_model`). Inputs are
    checked before any work; if the edit fails midway, every weight is restored."""
    facts = list(facts)
    plan = _plan(model, tok, facts, cfg)
    record = MemitRecord(cfg, plan.layers, [name for name, _, _ in plan.targets], {
        f"{name}.weight": module.weight.detach().to("cpu", copy=True)
        for name, module, _ in plan.targets})
    return run_or_restore(model, record, lambda: _run(model, tok, facts, cfg, corpus, plan,
                                                      record))


def _covariances(model, tok, plan: _Plan, cfg: MemitConfig, corpus, record) -> list:
    if not cfg.use_covariance:
        return [None] * len(plan.layers)
    out = []
    for name, _, _ in plan.targets:
        cov = get_covariance(model, tok, name, corpus if corpus is not None else cfg.cov_dataset,
                             cfg)
        record.covariance.append({"module": name, "path": str(cov.path),
                                  "cache_hit": cov.cache_hit, "n_tokens": cov.n_tokens})
        out.append(cov.matrix)
    return out


def _rows(tok, facts: list[dict], contexts: list[str], cfg: MemitConfig):
    """Per fact: the context rows (keys, z) and the rows h^L is read at (update_key)."""
    ctx = [[make_row(tok, compose(c, f["prompt"]), f["subject"], fact_label(f)) for c in contexts]
           for f in facts]
    at = ctx if cfg.update_key == "mean" else \
        [[make_row(tok, f["prompt"], f["subject"], fact_label(f))] for f in facts]
    return ctx, at


def _targets(model, tok, facts, cfg, plan: _Plan, ctx, h_top, record) -> torch.Tensor:
    """(n, d_model): δ_i per fact at the highest layer (step 3)."""
    top = plan.top
    out = []
    for i, (fact, answer) in enumerate(tqdm(list(zip(facts, top.answers)), unit="fact",
                                            desc=f"memit z ({cfg.objective})", leave=False)):
        rows = list(ctx[i])
        if top.objective.uses_paraphrases:
            rows += [make_row(tok, p, fact["subject"], f"{fact_label(fact)} paraphrase")
                     for p in list(fact.get("paraphrases") or [])[:cfg.rephrase_count]]
        kl = [make_row(tok, p, fact["subject"], f"{fact_label(fact)} KL prompt")
              for p in cfg.kl_prompts]
        value = optimise_value(model, tok, top.module, top.layout.lens, answer, rows, kl, None,
                               top.objective, cfg, top.defense_layers, v_orig=h_top[i])
        out.append(value.delta)
        record.deltas.append(float(value.delta.norm()))
        record.losses.append((value.losses[0], value.losses[-1]))
    return torch.stack(out)


def _run(model, tok, facts: list[dict], cfg: MemitConfig, corpus, plan: _Plan,
         record: MemitRecord) -> None:
    t0 = time.perf_counter()
    pad, lens, top = pad_id(tok), plan.top.layout.lens, plan.layers[-1]
    covs = _covariances(model, tok, plan, cfg, corpus, record)
    record.contexts = context_templates(model, tok, cfg.context_templates, cfg.context_lengths,
                                        cfg.seed)
    ctx, at = _rows(tok, facts, record.contexts, cfg)
    t1 = time.perf_counter()
    z = hidden_at_subject(model, lens, top, at, pad)  # (n, d_model): h^L, unedited
    z = z + _targets(model, tok, facts, cfg, plan, ctx, z, record)  # z_i = h_i^L + δ_i
    t2 = time.perf_counter()
    for i, ((name, module, orientation), cov) in enumerate(zip(plan.targets, covs)):
        keys = fact_keys(model, module, ctx, pad)  # (n, d_ff) on the current model
        missing = z - hidden_at_subject(model, lens, top, at, pad)  # (n, d_model)
        residual = spread(missing, i, len(plan.targets))
        delta = batch_delta(keys, residual, cov, cfg.update_weight, cfg.cov_ridge)
        apply_delta(module, delta, orientation)
        record.layer_log.append({"module": name, "missing_norm": float(missing.norm(dim=1)
                                                                        .mean()),
                                 "update_norm": float(delta.norm())})
    residual_after = z - hidden_at_subject(model, lens, top, at, pad)
    record.layer_log.append({"after": True, "missing_norm": float(residual_after.norm(dim=1)
                                                                  .mean())})
    record.seconds = {"covariance_and_contexts": round(t1 - t0, 3),
                      "targets": round(t2 - t1, 3),
                      "updates": round(time.perf_counter() - t2, 3)}
