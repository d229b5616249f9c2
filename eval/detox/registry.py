"""Registries of detox scorers, one per component of the joint score.

Three kinds of scorer, each a small object with one batch method

    score(texts: list[str], sources: list[str] | None = None) -> list[float]   # each in [0, 1]

- ``sta``: style transfer accuracy, the probability that a text is *not* toxic/inappropriate;
- ``sim``: content similarity of each text to its source;
- ``fl``: fluency.

A scorer is described by a frozen config dataclass (its constructor arguments plus ``name``)
registered with ``@register(kind, name, scorer_cls)`` beside the scorer class; every module of
``eval.detox`` is imported before a registry is read, so a new scorer is one new file.
``create(cfg)`` builds the scorer; models are loaded on the first ``score`` call, never at
construction or import. The same scorers rank best-of-n candidates, fill ``detox eval``
reports and serve as RL rewards. A config's ``needs()`` declares the models (or package) its
scorer will load, so a command's preflight checks them before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Protocol

from lethe.recipe import registry_field
from lethe.registry import discover

KINDS = ("sta", "sim", "fl")

# kind -> name -> config dataclass; each config class carries `scorer_cls`.
SCORERS: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}


class Scorer(Protocol):
    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        ...


def register(kind: str, name: str, scorer_cls: type) -> Callable[[type], type]:
    """Class decorator: register config dataclass `cls` as scorer `name` of `kind`."""
    if kind not in SCORERS:
        raise ValueError(f"unknown scorer kind {kind!r}; one of {KINDS}")

    def deco(cls: type) -> type:
        if name in SCORERS[kind]:
            raise ValueError(f"{kind} scorer {name!r} registered twice")
        cls.scorer_cls = scorer_cls
        SCORERS[kind][name] = cls
        return cls

    return deco


@dataclass(frozen=True)
class Need:
    """Something a scorer loads on first use, declared by its config's `needs()` so that a
    command's preflight can check it before any work (a model, or else a package)."""

    model: str | None = None  # a model spec (hub id, dir, GGUF, alias; lethe.loading)
    task: str = "encoder"  # how it is loaded: causal-lm | sequence-classification | encoder
    label: str | None = None  # a label the classifier must have (its id2label names)
    package: str | None = None  # an importable package the scorer needs instead of a model
    files: tuple[str, ...] = ()  # local files the scorer reads instead of a model


def needs(cfg) -> list[Need]:
    """What the scorer `cfg` describes will load (its config's `needs()`; none if absent)."""
    declared = getattr(cfg, "needs", None)
    return list(declared()) if declared is not None else []


def scorer_configs(kind: str) -> dict[str, type]:
    """name -> config dataclass of every scorer of `kind` (the modules of eval.detox imported)."""
    discover("eval.detox")
    return SCORERS[kind]


def scorer_field(kind: str, default: str, **kwargs):
    """A recipe section whose `name:` picks a scorer of `kind` (its config's fields are the
    rest of the mapping); by default scorer `default` with `kwargs`."""
    return registry_field(lambda name: scorer_configs(kind)[name],
                          lambda: sorted(scorer_configs(kind)),
                          default_factory=lambda: scorer_configs(kind)[default](**kwargs))


def create(cfg) -> Scorer:
    """Build the scorer a config describes (no model is loaded yet)."""
    kwargs = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "name"}
    return type(cfg).scorer_cls(**kwargs)


def batches(items: list, size: int):
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + max(1, size)]
