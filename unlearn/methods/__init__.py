"""Unlearning methods: each a loss over a {"forget": ..., "retain": ...} batch, one file each.

A method file defines a frozen config dataclass (its recipe `method:` section) and a loss
function `loss(model, batch, cfg, ref) -> (loss, logs)`, and registers both with `@register`.
The shared trainer owns the loop and calls the loss; nothing branches on method names.

`ref` is a `Reference` (unlearn/methods/reference.py) when the method declares it needs one:
- `needs_ref_logp`: per-example sequence log-likelihoods under the frozen starting model are
  computed once before training and travel in the batch as `batch[side]["ref_logp"]` (no
  second model is held, no extra forward per step);
- `needs_ref_model`: full next-token distributions of the starting model (KL regularisers): with
  LoRA the base with adapters disabled, otherwise a frozen copy (unavoidable for a full KL).

Two optional hooks (see docs/methods.md):
- `prepare(model, cfg) -> model`: called once before training, AFTER LoRA is applied and before
  `make_reference` (rmu freezes everything but its chosen layers here; applying LoRA later
  would make adapters in every layer trainable again);
- `run(model=, tokenizer=, forget=, retain=, cfg=, train_fn=, output_dir=, lora=None,
  collator=None) -> model`: replaces the single trainer pass for multi-stage methods
  (task_vector, whp); `train_fn(model, dataset, collator, loss_fn, output_dir)` trains with the
  recipe's `train:` settings and returns the model (or its Trainer); `lora` is a LoraSection or
  None. The returned model is plain (adapters merged).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Callable

# One import per method file; each registers itself on import.
METHOD_MODULES = ("ga", "grad_diff", "ga_klr", "npo", "npo_gdr", "npo_klr", "simnpo", "rmu",
                  "task_vector", "whp", "rome")


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's recipe section; `name` picks the method."""

    name: str


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    loss: Callable  # (model, batch, cfg, ref) -> (loss tensor, {name: float})
    needs_ref_logp: bool = False
    needs_ref_model: bool = False
    needs_retain: bool = False
    # Multi-stage methods (task_vector, whp) override the whole procedure, called instead of one
    # trainer pass: run(model=, tokenizer=, forget=, retain=, cfg=, train_fn=, output_dir=,
    # lora=None, collator=None) -> model
    run: Callable | None = None
    summary: str = ""
    # Optional one-time model preparation before training: prepare(model, cfg) -> model
    # (e.g. rmu freezes all parameters but those of its chosen layers).
    prepare: Callable | None = None
    # Edits are not losses (ROME): edit(model, tokenizer, rows, cfg, data_source) -> summary
    # dict, changing `model` in place from the request's table rows (e.g. `facts` rows).
    edit: Callable | None = None
    # Tables the method reads beyond each request's text field, for the preflight to check
    # before anything runs: reads(cfg, data_source, forget: SplitRef) -> [(source, config,
    # split, fields)] (ROME: the facts' fields and its covariance corpus).
    reads: Callable | None = None


METHODS: dict[str, Method] = {}
_loaded = False


def register(name: str, config_cls: type, *, needs_ref_logp: bool = False,
             needs_ref_model: bool = False, needs_retain: bool = False, run=None,
             prepare=None, edit=None, reads=None):
    """Decorator for a loss function: `@register("npo", NPOConfig, needs_ref_logp=True)`."""
    if not (dataclasses.is_dataclass(config_cls) and issubclass(config_cls, MethodConfig)):
        raise TypeError(f"{name}: config must be a MethodConfig dataclass")

    def wrap(fn):
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        METHODS[name] = Method(name, config_cls, fn, needs_ref_logp, needs_ref_model,
                               needs_retain, run, doc[0] if doc else "", prepare, edit,
                               reads)
        return fn

    return wrap


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in METHOD_MODULES:
            try:
                importlib.import_module(f"unlearn.methods.{module}")
            except ModuleNotFoundError as err:
                if err.name != f"unlearn.methods.{module}":
                    raise
        _loaded = True


def get_method(name: str) -> Method:
    _load_all()
    return METHODS[name]  # KeyError → the recipe loader names the valid methods


def method_config_class(name: str) -> type:
    return get_method(name).config_cls


def method_names() -> list[str]:
    _load_all()
    return sorted(METHODS)
