"""Unlearning methods: each a loss over a {"forget": ..., "retain": ...} batch, one file each.

A method file defines a frozen config dataclass (its recipe `method:` section) and a loss
function `loss(model, batch, cfg, ref) -> (loss, logs)`, and registers both with `@register`.
The shared trainer owns the loop and calls the loss; nothing branches on method names. Every
module of this package is imported before the registry is read (`lethe.registry.discover`), so
a new method is one new file here (docs/dev/extending.md).

`ref` is a `Reference` (unlearn/methods/reference.py) when the method declares it needs one:
- `needs_ref_logp`: per-example sequence log-likelihoods under the frozen starting model are
  computed once before training and travel in the batch as `batch[side]["ref_logp"]` (no
  second model is held, no extra forward per step);
- `needs_ref_model`: full next-token distributions of the starting model (KL regularisers): with
  LoRA the base with adapters disabled, otherwise a frozen copy (unavoidable for a full KL).

Methods that are not one loss register their entry point instead (`kind=`):
- `kind="run"`: `run(model=, tokenizer=, forget=, retain=, cfg=, train_fn=, output_dir=,
  lora=None, collator=None) -> model` replaces the single trainer pass for multi-stage methods
  (task_vector, whp); `train_fn(model, dataset, collator, loss_fn, output_dir)` trains with the
  recipe's `train:` settings and returns the model (or its Trainer); `lora` is a LoraSection or
  None. The returned model is plain (adapters merged).
- `kind="edit"`: `edit(model, tokenizer, rows, cfg, data_source) -> summary dict` rewrites
  weights in closed form (rome).
One optional hook (see docs/methods.md): `prepare(model, cfg) -> model`, called once before
training, AFTER LoRA is applied and before `make_reference` (rmu freezes everything but its
chosen layers here; applying LoRA later would make adapters in every layer trainable again).

Preference methods (dpo, idk_dpo, altpo) declare `needs_alternate`: their batches carry an
"alternate" side, the preferred response to each forget example's prompt (unlearn.alternates
builds it from the config's `alternate` setting). A method whose loss keeps state across steps
(pdu's dual variable) declares `state=factory`: `factory(cfg)` is called once per request and
the object is passed to every loss call as `state=`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from lethe.registry import discover

KINDS = ("loss", "run", "edit")  # what a method's registered entry point is


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's recipe section; `name` picks the method."""

    name: str

    @property
    def wants_ref_model(self) -> bool:
        """Whether this configuration needs the reference model's full distributions even though
        its method does not always: `reference_impl: muse_code` (MUSE's released code computes
        NPO's log-ratio on reference logits; docs/faithfulness.md)."""
        return getattr(self, "reference_impl", "paper") == "muse_code"

    def request_problem(self, mode: str, n_requests: int) -> str | None:
        """Why this configuration cannot serve the recipe's forget requests (checked by the
        preflight), or None. `mode`: sequential | independent."""
        return None


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    # Exactly one of loss / run / edit is set (the function `@register` decorated):
    loss: Callable | None = None  # (model, batch, cfg, ref) -> (loss tensor, {name: float})
    # Multi-stage methods (task_vector, whp) override the whole procedure, called instead of one
    # trainer pass: run(model=, tokenizer=, forget=, retain=, cfg=, train_fn=, output_dir=,
    # lora=None, collator=None) -> model
    run: Callable | None = None
    # Edits are not losses (ROME): edit(model, tokenizer, rows, cfg, data_source) -> summary
    # dict, changing `model` in place from the request's table rows (e.g. `facts` rows).
    edit: Callable | None = None
    needs_ref_logp: bool = False
    needs_ref_model: bool = False
    needs_retain: bool = False
    summary: str = ""  # the first line of the entry point's docstring (`unlearn methods`)
    # Optional one-time model preparation before training: prepare(model, cfg) -> model
    # (e.g. rmu freezes all parameters but those of its chosen layers).
    prepare: Callable | None = None
    # Tables the method reads beyond each request's text field, for the preflight to check
    # before anything runs: reads(cfg, data_source, forget: SplitRef) -> [(source, config,
    # split, text fields[, fields of any type])] (ROME: the facts' fields and its covariance
    # corpus; AltPO: the alternate answers, a list per row).
    reads: Callable | None = None
    needs_alternate: bool = False  # batches carry an "alternate" side (preference methods)
    # Per-request mutable state for the loss: state(cfg) -> object, passed as loss(..., state=)
    state: Callable | None = None


METHODS: dict[str, Method] = {}


def register(name: str, config_cls: type, *, kind: str = "loss", needs_ref_logp: bool = False,
             needs_ref_model: bool = False, needs_retain: bool = False, prepare=None,
             reads=None, needs_alternate: bool = False, state=None):
    """Decorator for a method's entry point: its loss (`@register("npo", NPOConfig,
    needs_ref_logp=True)`), or with `kind="run"` / `kind="edit"` its procedure."""
    if not (dataclasses.is_dataclass(config_cls) and issubclass(config_cls, MethodConfig)):
        raise TypeError(f"{name}: config must be a MethodConfig dataclass")
    if kind not in KINDS:
        raise ValueError(f"{name}: kind must be one of {KINDS}, got {kind!r}")

    def wrap(fn):
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        METHODS[name] = Method(name, config_cls, **{kind: fn}, needs_ref_logp=needs_ref_logp,
                               needs_ref_model=needs_ref_model, needs_retain=needs_retain,
                               summary=doc[0] if doc else "", prepare=prepare, reads=reads,
                               needs_alternate=needs_alternate, state=state)
        return fn

    return wrap


def methods() -> dict[str, Method]:
    """name -> Method for every method (the modules of unlearn.methods imported first)."""
    discover("unlearn.methods")
    return METHODS


def get_method(name: str) -> Method:
    return methods()[name]  # KeyError → the recipe loader names the valid methods


def method_config_class(name: str) -> type:
    return get_method(name).config_cls


def method_names() -> list[str]:
    return sorted(methods())
