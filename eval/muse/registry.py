"""The metric registry and the records metrics share.

A metric module defines a plain function with named inputs (e.g.
`verbmem(lm, prompts, gts, *, max_new_tokens)`) and registers a small adapter with
`@register_metric(...)` that pulls those inputs out of the benchmark tables. The suite looks
metrics up through `metrics()`, which first imports every module of `eval.muse` (so a new
metric is one new file there); nothing branches on metric names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from lethe.errors import LetheError
from lethe.registry import discover

# Desired direction of a criterion, and the arrow results.md prints beside its name.
ARROWS = {"down": "↓", "up": "↑", "zero": "→0"}


@dataclass(frozen=True)
class SuiteSettings:
    """Knobs of one evaluation run (recorded in results.json)."""

    batch_size: int = 8  # sequences per forward pass / generate call
    seed: int = 0  # seeds every bootstrap (and sampling, where any)
    min_k: float = 0.4  # k of Min-K% Prob (and Min-K%++); MUSE's PrivLeak uses 0.4
    verbmem_max_new_tokens: int = 128  # MUSE: greedy 128 tokens, gt cut to its first 128 tokens
    knowmem_max_new_tokens: int = 32  # MUSE: greedy 32 tokens for a QA answer
    n_icl: int = 10  # in-context QA pairs taken (in order) from the *_icl split
    confidence: float = 0.95  # level of every bootstrap interval
    n_resamples: int = 9999  # bootstrap resamples
    limit: int | None = None  # evaluate only the first N rows of each split (smoke runs)
    max_length: int | None = None  # token cap per sequence (default: the model's positions)
    progress: bool = True  # tqdm bars on long loops

    def __post_init__(self):
        if self.batch_size < 1:
            raise LetheError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0 < self.min_k <= 1:
            raise LetheError(f"Min-K% k must be in (0, 1], got {self.min_k}")
        if not 0 < self.confidence < 1:
            raise LetheError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.limit is not None and self.limit < 1:
            raise LetheError(f"--limit must be at least 1, got {self.limit}")
        if self.n_icl < 0:
            raise LetheError(f"n_icl must be ≥ 0, got {self.n_icl}")
        if self.n_resamples < 1:
            raise LetheError(f"n_resamples must be ≥ 1, got {self.n_resamples}")


@dataclass(frozen=True)
class Split:
    """One table a metric reads: `DATA/{config}/{split}` with these columns."""

    config: str
    split: str
    columns: tuple[str, ...]
    limited: bool = True  # whether --limit applies (not to in-context example pools)

    @property
    def key(self) -> str:
        return f"{self.config}/{self.split}"


@dataclass(frozen=True)
class MetricContext:
    """Everything a registered metric may use for one model."""

    lm: Any  # lethe.lm.LM
    tables: Mapping[str, Mapping[str, list]]  # "config/split" -> {column: values}
    settings: SuiteSettings
    reference: Any = None  # privleak's retrain reference (eval.muse.privleak.RetrainReference)


@dataclass(frozen=True)
class Metric:
    name: str  # registry key and --metrics name, e.g. "verbmem_f"
    title: str  # column name in results.md / the figure, e.g. "VerbMem_f"
    criterion: str  # the MUSE criterion it measures, e.g. "C1 no verbatim memorization"
    direction: str  # "down" | "up" | "zero": what an ideal unlearned model does to it
    splits: tuple[Split, ...]  # tables it reads (checked before any model is loaded)
    compute: Callable[[MetricContext], Any] = field(repr=False)  # -> eval.stats.Score
    needs_reference: bool = False  # needs a retrain AUC (privleak)

    @property
    def column(self) -> str:
        return f"{self.title} {ARROWS[self.direction]}"


METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, title: str, criterion: str, direction: str,
                    splits: tuple[Split, ...], needs_reference: bool = False):
    """Decorator: register `compute(ctx) -> Score` under `name`."""
    if direction not in ARROWS:
        raise ValueError(f"direction must be one of {sorted(ARROWS)}")

    def deco(fn):
        METRICS[name] = Metric(name, title, criterion, direction, tuple(splits), fn,
                               needs_reference)
        return fn
    return deco


def metrics() -> dict[str, Metric]:
    """name -> Metric for every registered metric (the modules of eval.muse imported first)."""
    discover("eval.muse")
    return METRICS
