"""Preflight checks a rewriter's `check(pf, recipe, where)` is made of: its language model
(with an adapter that fits it, and the device), the scorers it will load, and the rewriter it
wraps. `detox.preflight` runs them for `detox rewrite` before any model is loaded."""

from __future__ import annotations

from pathlib import Path

from lethe.preflight import Preflight, check_adapter, check_device, check_model


def check_rewriter(pf: Preflight, cfg, recipe, where: str = "rewriter") -> None:
    check = getattr(cfg, "check", None)
    if check is None:
        pf.problem(f"{where}: no preflight is defined for {type(cfg).__name__} (give it a "
                   f"check(pf, recipe, where) method)")
        return
    check(pf, recipe, where)


def check_language_model(pf: Preflight, cfg, where: str) -> None:
    """LMFields: the model (causal or seq2seq), an adapter that fits it, the device."""
    info = check_model(pf, cfg.model, where=f"{where}.model", task=cfg.task)
    if cfg.adapter:
        if not (Path(cfg.adapter) / "adapter_config.json").is_file():
            pf.problem(f"{where}.adapter {cfg.adapter}: not a PEFT adapter directory (no "
                       f"adapter_config.json); give the directory the adapter was saved to")
        elif info is not None:
            fits = check_adapter(pf, cfg.adapter, info, where=f"{where}.adapter")
            if fits is not None:
                pf.ok(f"{where}.adapter {cfg.adapter}: {fits} LoRA matrices fit {cfg.model}")
    check_device(pf, cfg.device, where=f"{where}.device")


def check_scorer(pf: Preflight, cfg, where: str) -> None:
    """Every model (or package) the scorer `cfg` will load; a classifier has its label."""
    from eval.detox.registry import needs
    from eval.detox.toxicity import HFClassifierProb
    from lethe.loading import package_dir

    for need in needs(cfg):
        if need.package:
            if pf.run(where, package_dir, need.package):
                pf.ok(f"{where}: package {need.package} installed")
            continue
        if need.files:
            missing = [f for f in need.files if not Path(f).is_file()]
            if missing:
                pf.problem(f"{where}.model: {', '.join(missing)} not found")
            else:
                pf.ok(f"{where}: {', '.join(need.files)} found")
            continue
        info = check_model(pf, need.model, where=f"{where}.model", task=need.task)
        if info is not None and need.label and info.config is not None:
            pf.run(f"{where}.model", HFClassifierProb.label_index, info.config.id2label,
                   need.label, need.model)
