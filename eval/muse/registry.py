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
    # MIA scores PrivLeak reports (None: all but GradNorm; `ref` when a reference model is
    # given); `gradnorm` costs a backward pass per text
    mia: tuple[str, ...] | None = None
    grad_p: float = 2.0  # the p of GradNorm's p-norm (1, 2 or inf)
    forget_split: str = "forget10"  # TOFU: the forget config ({forget}; holdout{NN} follows it)
    qa_template: str = "plain"  # TOFU prompts: plain ("Question: …\nAnswer: …") or chat
    tofu_max_new_tokens: int = 200  # TOFU ROUGE: greedy tokens per answer (open-unlearning)

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
        self._check_tofu_and_mia()

    def _check_tofu_and_mia(self):
        from eval.attacks.mia import MIA_SCORES

        unknown = [n for n in self.mia or () if n not in MIA_SCORES]
        if unknown:
            raise LetheError(f"unknown MIA score(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(MIA_SCORES)}")
        if self.grad_p not in (1, 2, float("inf")):
            raise LetheError(f"GradNorm's p must be 1, 2 or inf, got {self.grad_p}")
        if self.qa_template not in ("plain", "chat"):
            raise LetheError(f"qa template must be plain or chat, got {self.qa_template!r}")
        if not self.forget_split.startswith("forget"):
            raise LetheError(f"the TOFU forget split is named forget<NN> (forget01, forget05, "
                             f"forget10), got {self.forget_split!r}")
        if self.tofu_max_new_tokens < 1:
            raise LetheError(f"tofu_max_new_tokens must be ≥ 1, got {self.tofu_max_new_tokens}")

    @property
    def holdout_split(self) -> str:
        """TOFU's holdout config that matches the forget split (forget10 → holdout10)."""
        return "holdout" + self.forget_split[len("forget"):]


@dataclass(frozen=True)
class Split:
    """One table a metric reads: `DATA/{config}/{split}` with these columns.

    `config` may name `{forget}` or `{holdout}` (TOFU's forget01/05/10 and holdout01/05/10,
    chosen by `SuiteSettings.forget_split`): `resolved(settings)` is the table actually read,
    while `key` (placeholders kept) is where metrics find it in `MetricContext.tables`."""

    config: str
    split: str
    columns: tuple[str, ...]
    limited: bool = True  # whether --limit applies (not to in-context example pools)
    lists: tuple[str, ...] = ()  # those of `columns` holding lists of strings (TOFU's)

    @property
    def key(self) -> str:
        return f"{self.config}/{self.split}"

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The columns that hold one string per row (the preflight checks their type)."""
        return tuple(c for c in self.columns if c not in self.lists)

    def resolved(self, settings: "SuiteSettings") -> "Split":
        """This split with `{forget}` / `{holdout}` filled in from `settings`."""
        fill = {"forget": settings.forget_split, "holdout": settings.holdout_split}
        return Split(self.config.format(**fill), self.split.format(**fill), self.columns,
                     self.limited, self.lists)


@dataclass(frozen=True)
class MetricContext:
    """Everything a registered metric may use for one model."""

    lm: Any  # lethe.lm.LM
    tables: Mapping[str, Mapping[str, list]]  # "config/split" -> {column: values}
    settings: SuiteSettings
    reference: Any = None  # privleak's retrain reference (eval.muse.privleak.RetrainReference)
    # The retrain row's Scores by metric name, or "self" while the retrain row itself is being
    # evaluated (TOFU's forget quality compares with it); None without a retrain model
    retrain: Any = None
    mia_reference: Any = None  # lethe.lm.LM of --reference (the `ref` MIA score), or None
    cache: dict = field(default_factory=dict)  # values several metrics of one model share


@dataclass(frozen=True)
class Metric:
    name: str  # registry key and --metrics name, e.g. "verbmem_f"
    title: str  # column name in results.md / the figure, e.g. "VerbMem_f"
    criterion: str  # the MUSE criterion it measures, e.g. "C1 no verbatim memorization"
    direction: str  # "down" | "up" | "zero": what an ideal unlearned model does to it
    splits: tuple[Split, ...]  # tables it reads (checked before any model is loaded)
    compute: Callable[[MetricContext], Any] = field(repr=False)  # -> eval.stats.Score
    needs_reference: bool = False  # needs a retrain AUC (privleak)
    needs_retrain_model: bool = False  # needs the retrain model's own scores (TOFU FQ)
    benchmark: str = "muse"  # the benchmark it belongs to (report title, --benchmark)
    fmt: str = ".1f"  # how results.md writes its values (TOFU's are in [0, 1]: ".3f")
    log_axis: bool = False  # plot on a log scale (p-values)

    @property
    def column(self) -> str:
        return f"{self.title} {ARROWS[self.direction]}"


METRICS: dict[str, Metric] = {}
# --benchmark NAME: the metrics `unlearn eval` runs when --metrics is not given, in report
# order (MUSE's are eval.muse.suite.DEFAULT_METRICS; TOFU's are registered by eval.tofu)
BENCHMARKS: dict[str, tuple[str, ...]] = {}


def register_metric(name: str, *, title: str, criterion: str, direction: str,
                    splits: tuple[Split, ...], needs_reference: bool = False,
                    needs_retrain_model: bool = False, benchmark: str = "muse",
                    fmt: str = ".1f", log_axis: bool = False):
    """Decorator: register `compute(ctx) -> Score` under `name`."""
    if direction not in ARROWS:
        raise ValueError(f"direction must be one of {sorted(ARROWS)}")

    def deco(fn):
        METRICS[name] = Metric(name, title, criterion, direction, tuple(splits), fn,
                               needs_reference, needs_retrain_model, benchmark, fmt, log_axis)
        return fn
    return deco


def register_benchmark(name: str, defaults: tuple[str, ...]) -> None:
    """Declare `--benchmark name` and the metrics it runs by default."""
    BENCHMARKS[name] = tuple(defaults)


def metrics() -> dict[str, Metric]:
    """name -> Metric for every registered metric (the modules of eval.muse and eval.tofu
    imported first)."""
    discover("eval.muse")
    discover("eval.tofu")
    return METRICS


def benchmarks() -> dict[str, tuple[str, ...]]:
    """--benchmark name -> its default metrics."""
    metrics()
    return BENCHMARKS
