"""Run the selected MUSE metrics for one or several models and build the results dict.

This is the Python API the unlearning pipeline calls in-process (no CLI):

    from eval.muse import ModelEntry, SuiteSettings, evaluate_models, write_report
    results = evaluate_models([("npo", model, tokenizer, identity)], "runs/demo/world",
                              ["verbmem_f", "knowmem_f", "privleak", "knowmem_r"],
                              retrain_auc=0.49, settings=SuiteSettings(batch_size=16),
                              out_dir="runs/demo/eval")

Order of work: check metric names and the retrain reference, load every table the metrics
need (so a missing config/split/field fails before any model is touched), then evaluate the
retrain model first (its AUC is PrivLeak's reference), the target, then the models. Models
given as `ModelEntry(loader=...)` are loaded one at a time and released after use.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from eval.muse.privleak import RetrainReference, resolve_retrain_auc
from eval.muse.protocols import protocol_steps
from eval.muse.registry import MetricContext, SuiteSettings, benchmarks, register_benchmark
from eval.muse.registry import metrics as registered
from lethe.errors import LetheError
from lethe.lm import LM
from lethe.loading import TABLE_FORMATS, load_table
from lethe.report import library_versions, machine_info

log = logging.getLogger(__name__)

SCHEMA = "lethe.muse-eval/1"
DEFAULT_METRICS = ("verbmem_f", "knowmem_f", "privleak", "knowmem_r")  # MUSE's C1-C4 order
# MUSE measures verbatim memorisation on the forget set only, and its papers call it VerbMem.
ALIASES = {"verbmem": "verbmem_f"}
register_benchmark("muse", DEFAULT_METRICS)
ROLES = ("target", "model", "retrain")  # also the row order of the report


@dataclass
class ModelEntry:
    """One model to evaluate: given loaded, or with a `loader` called when its turn comes."""

    label: str  # row name in the report
    model: Any = None  # a causal LM (transformers / peft), on the device it should run on
    tokenizer: Any = None
    identity: dict = field(default_factory=dict)  # lethe.loading.model_identity(...) or similar
    loader: Callable[[], tuple[Any, Any]] | None = None  # -> (model, tokenizer), lazily
    role: str = "model"  # "model" | "target" (before unlearning) | "retrain" (reference)

    @classmethod
    def from_spec(cls, spec: str, label: str, role: str = "model", *, dtype: str = "auto",
                  device: str = "auto", revision: str | None = None,
                  trust_remote_code: bool = False) -> "ModelEntry":
        """A model loaded from `spec` (hub id, checkpoint, GGUF, adapter directory) only when
        its turn comes, by `lethe.lm.load_for_inference` (adapters merged, on `device`: auto =
        cuda > mps > cpu); its tokenizer and identity are read now (cheap, fails early). Both
        `unlearn eval` and the evaluation after `unlearn run` build their rows here."""
        from lethe.lm import load_for_inference
        from lethe.loading import load_tokenizer, model_identity

        identity = model_identity(spec, revision)
        tokenizer = load_tokenizer(spec, revision=revision, trust_remote_code=trust_remote_code)

        def loader():
            return load_for_inference(spec, dtype=dtype, device=device, revision=revision,
                                      trust_remote_code=trust_remote_code), tokenizer

        return cls(label, identity=identity, loader=loader, role=role)

    @contextlib.contextmanager
    def loaded(self):
        if self.model is not None:
            yield self.model, self.tokenizer
            return
        if self.loader is None:
            raise LetheError(f"model '{self.label}' has neither a model nor a loader")
        model, tokenizer = self.loader()
        try:
            yield model, tokenizer
        finally:  # free memory before the next model is loaded
            del model, tokenizer
            gc.collect()
            with contextlib.suppress(Exception):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()


def as_entry(item, role: str = "model") -> ModelEntry:
    """A `ModelEntry` from an entry or a `(label, model, tokenizer, identity)` tuple."""
    if isinstance(item, ModelEntry):
        return item if item.role == role or role == "model" else replace(item, role=role)
    if isinstance(item, (tuple, list)) and len(item) in (3, 4):
        label, model, tokenizer, *rest = item
        return ModelEntry(str(label), model, tokenizer, dict(rest[0] or {}) if rest else {},
                          role=role)
    raise TypeError("models must be ModelEntry or (label, model, tokenizer, identity) tuples")


# ---------------------------------------------------------------------------------------------
# checks and data


def resolve_metrics(names: str | Sequence[str] | None, *, have_reference: bool,
                    have_retrain_model: bool | None = None, benchmark: str = "muse") -> list[str]:
    """Validate metric names (comma-separated string or list); default: the benchmark's
    (MUSE's four, or TOFU's). `have_retrain_model` defaults to `have_reference`.

    With no retrain reference the default leaves PrivLeak (and TOFU's forget quality, which
    needs a retrain model) out, logged; asking for them explicitly is an error.
    """
    have_model = have_reference if have_retrain_model is None else have_retrain_model
    if benchmark not in benchmarks():
        raise LetheError(f"unknown benchmark {benchmark!r}; choose one of "
                         f"{', '.join(sorted(benchmarks()))}")
    if names is None or names == "" or names == []:
        defaults = benchmarks()[benchmark]
        chosen = [m for m in defaults if _available(m, have_reference, have_model)]
        for m in defaults:
            if m not in chosen:
                log.warning("%s skipped: it needs a retrain model (--retrain MODEL)%s", m,
                            "" if registered()[m].needs_retrain_model else
                            " or --retrain-auc")
        return chosen
    if isinstance(names, str):
        names = [n for n in (p.strip() for p in names.split(",")) if n]
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in registered()]
    if unknown:
        raise LetheError(f"unknown metric(s) {', '.join(unknown)}; valid metrics: "
                         f"{', '.join(sorted(registered()))}")
    if not names:
        raise LetheError(f"no metric selected; valid metrics: {', '.join(sorted(registered()))}")
    needing = [n for n in names if registered()[n].needs_reference]
    if needing and not have_reference:
        raise LetheError(f"{needing[0]} needs a retrain reference: pass --retrain MODEL or "
                         f"--retrain-auc (a number in (0, 1] or muse-news / muse-books), or "
                         f"leave {needing[0]} out of --metrics")
    needing = [n for n in names if registered()[n].needs_retrain_model]
    if needing and not have_model:
        raise LetheError(f"{needing[0]} compares with the retrain model's own scores: pass "
                         f"--retrain MODEL (TOFU's retain model), or leave {needing[0]} out "
                         f"of --metrics")
    return list(dict.fromkeys(names))


def _available(name: str, have_reference: bool, have_model: bool) -> bool:
    m = registered()[name]
    return (have_reference or not m.needs_reference) and (have_model or
                                                          not m.needs_retrain_model)


def _fingerprint(columns: dict[str, list]) -> str:
    h = hashlib.sha256()
    for name in sorted(columns):
        h.update(name.encode())
        h.update(json.dumps(columns[name], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def _refuse_empty_local_split(data: str, sp) -> None:  # sp: a resolved Split
    """An empty local split file makes `datasets` fail with a bare StopIteration; say what it
    is instead (a hub split with no rows is caught by load_table itself)."""
    base = Path(str(data)).expanduser() / sp.config
    for ext in TABLE_FORMATS:
        f = base / f"{sp.split}{ext}"
        if f.is_file():
            if f.stat().st_size < 4096 and not f.read_text(errors="replace").strip():
                raise LetheError(f"dataset {data} (config {sp.config}) split {sp.split} is "
                                 f"empty ({f}); MUSE metrics need at least one row")
            return


def load_suite_data(data: str, metrics: Iterable[str], *, settings: SuiteSettings,
                    revision: str | None = None) -> tuple[dict[str, dict[str, list]], dict]:
    """Every table the metrics read, as {"config/split": {column: list}}, plus identifiers."""
    tables, info = {}, {}
    for name in metrics:
        for declared in registered()[name].splits:
            if declared.key in tables:
                continue
            sp = declared.resolved(settings)  # TOFU's {forget} → forget10, ...
            _refuse_empty_local_split(data, sp)
            ds = load_table(data, config=sp.config, split=sp.split, columns=sp.columns,
                            revision=revision)
            cols = {c: list(ds[c]) for c in sp.columns}
            n = len(ds)
            if sp.limited and settings.limit:
                cols = {c: v[:settings.limit] for c, v in cols.items()}
            tables[declared.key] = cols
            info[sp.key] = {"rows": n, "rows_used": len(cols[sp.columns[0]]),
                            "sha256_16": _fingerprint(cols)}
    local = Path(str(data)).expanduser()
    source = str(local.resolve()) if local.exists() else str(data)
    return tables, {"source": source, "revision": revision, "tables": info}


# ---------------------------------------------------------------------------------------------
# the suite


def evaluate_models(models: Sequence[ModelEntry | tuple], data: str,
                    metrics: str | Sequence[str] | None = None, *,
                    retrain: ModelEntry | tuple | None = None,
                    target: ModelEntry | tuple | None = None,
                    retrain_auc: float | str | RetrainReference | None = None,
                    settings: SuiteSettings | None = None, batch_size: int | None = None,
                    out_dir: str | Path | None = None, protocol: str | None = None,
                    data_revision: str | None = None, benchmark: str = "muse",
                    mia_reference: ModelEntry | tuple | None = None, harness=None) -> dict:
    """Evaluate `models` (plus `target` and `retrain`, if given) on the benchmark `data`.

    `retrain` is a model evaluated as a row whose Min-K% AUC becomes PrivLeak's reference (and
    whose truth ratios TOFU's forget quality compares with); `retrain_auc` is PrivLeak's
    reference given directly (a number in (0, 1], "muse-news", "muse-books"); give at most
    one. `protocol` ("scal" | "sust") marks `models` as the checkpoints of forget_1..N in
    order. `benchmark` picks the default metrics (muse | tofu). `mia_reference`: a model kept
    loaded for the whole run, the `ref` MIA score's reference. `harness`: an
    `eval.lm_harness.HarnessSettings`; each model also runs those lm-evaluation-harness tasks
    (row["lm_eval"]). With `out_dir`,
    results.json/.md/.png are (re)written after every model, so an interrupted run keeps what
    it finished. Returns the results dict.
    """
    settings = settings or SuiteSettings()
    if batch_size is not None:
        settings = replace(settings, batch_size=batch_size)
    if retrain is not None and retrain_auc is not None:
        raise LetheError("give either a retrain model or a retrain AUC, not both")
    reference = (retrain_auc if isinstance(retrain_auc, RetrainReference) or retrain_auc is None
                 else resolve_retrain_auc(retrain_auc, k=settings.min_k))
    rows = _Rows([as_entry(m) for m in models],
                 as_entry(target, "target") if target is not None else None,
                 as_entry(retrain, "retrain") if retrain is not None else None)
    names = resolve_metrics(metrics, have_reference=reference is not None or
                            rows.retrain is not None, have_retrain_model=rows.retrain is not None,
                            benchmark=benchmark)
    tables, data_info = load_suite_data(data, names, settings=settings, revision=data_revision)
    steps = (protocol_steps(protocol, data, [e.label for e in rows.models],
                            revision=data_revision) if protocol else None)
    results = _results_skeleton(names, settings, data_info, reference)
    results["protocol"] = {"name": protocol, "steps": steps} if protocol else None
    results["benchmark"] = benchmark
    extra = {"harness": _harness(harness, results)}
    with _reference_lm(mia_reference, settings) as extra["mia_reference"]:
        if extra["mia_reference"] is not None:
            results["mia_reference"] = as_entry(mia_reference).identity
        _evaluate_rows(rows, names, tables, settings, reference, extra, results, out_dir)
    results["complete"] = True
    _write(results, out_dir)
    return results


def _harness(harness, results: dict):
    """(settings, task manager) of the lm-evaluation-harness tasks, checked before any model
    is loaded, or None."""
    if harness is None:
        return None
    from eval.lm_harness import task_manager

    results["lm_eval"] = asdict(harness)
    return harness, task_manager(harness)


def _evaluate_rows(rows, names, tables, settings, reference, extra, results, out_dir):
    """Every row in evaluation order (the retrain model first: PrivLeak's AUC and TOFU's
    forget quality of every other model need its scores); the report after each."""
    done, retrain_scores = {}, None
    for entry in rows.evaluation_order():
        own = entry is rows.retrain
        ctx = {"reference": "self" if own else reference,
               "retrain": "self" if own else retrain_scores,
               "mia_reference": extra["mia_reference"]}
        done[entry.label], scores = _evaluate_one(entry, names, tables, settings, ctx,
                                                  extra["harness"])
        if own:
            retrain_scores = scores
            if "privleak" in scores:
                reference = RetrainReference.from_score(scores["privleak"], entry.label)
                results["retrain_reference"] = _reference_info(reference)
        results["models"] = [done[e.label] for e in rows.report_order() if e.label in done]
        _write(results, out_dir)


@contextlib.contextmanager
def _reference_lm(entry, settings: SuiteSettings):
    """The `ref` MIA score's reference model as an LM, loaded once for the whole run."""
    if entry is None:
        yield None
        return
    with as_entry(entry).loaded() as (model, tokenizer):
        yield LM(model, tokenizer, max_length=settings.max_length, progress=settings.progress)


@dataclass
class _Rows:
    """The entries of one evaluation: the models, and the optional target and retrain rows."""

    models: list[ModelEntry]
    target: ModelEntry | None
    retrain: ModelEntry | None

    def __post_init__(self):
        if not self.models:
            raise LetheError("no model to evaluate")
        labels = [e.label for e in self.report_order()]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise LetheError(f"model labels must be unique; repeated: {', '.join(dupes)} "
                             f"(set them with --labels)")

    def report_order(self) -> list[ModelEntry]:  # the rows of the report (ROLES order)
        return [e for e in (self.target, *self.models, self.retrain) if e is not None]

    def evaluation_order(self) -> list[ModelEntry]:  # the retrain row first: its AUC is needed
        return [e for e in (self.retrain, self.target, *self.models) if e is not None]


def _results_skeleton(names: list[str], settings: SuiteSettings, data_info: dict,
                      reference) -> dict:
    table = registered()
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
        "data": data_info,
        "metrics": names,
        "criteria": {n: {"title": table[n].title, "column": table[n].column,
                         "criterion": table[n].criterion, "direction": table[n].direction,
                         "benchmark": table[n].benchmark, "format": table[n].fmt,
                         "log_axis": table[n].log_axis}
                     for n in names},
        "settings": asdict(settings),
        "seed": settings.seed,
        "retrain_reference": _reference_info(reference),
        "protocol": None,
        "models": [],
        "versions": library_versions(), "machine": machine_info(),
    }


def _write(results: dict, out_dir) -> None:
    if out_dir is not None:
        from eval.muse.report import write_report

        write_report(results, out_dir)


def _reference_info(ref: RetrainReference | None) -> dict | None:
    if ref is None:
        return None
    return {"auc": ref.auc, "source": ref.source, "k": ref.k, "aucs": dict(ref.aucs)}


def _evaluate_one(entry: ModelEntry, names: list[str], tables, settings: SuiteSettings,
                  context: dict, harness=None) -> tuple[dict, dict]:
    """The report row of one model, and its `Score` objects by metric name."""
    scores = {}
    row = {"label": entry.label, "role": entry.role, "identity": entry.identity, "scores": {},
           "seconds": {}}
    log.info("evaluating %s (%s)", entry.label, entry.role)
    with entry.loaded() as (model, tokenizer):
        lm = LM(model, tokenizer, max_length=settings.max_length, progress=settings.progress)
        shared = MetricContext(lm, tables, settings, **context)  # one cache per model
        for name in names:
            start = time.perf_counter()
            score = scores[name] = registered()[name].compute(shared)
            row["seconds"][name] = round(time.perf_counter() - start, 3)
            row["scores"][name] = score.to_dict()
            log.info("  %s %s = %s [%s, %s] (%.1fs)", entry.label, registered()[name].title,
                     _short(score.value), _short(score.ci_low), _short(score.ci_high),
                     row["seconds"][name])
        if harness is not None:  # the loaded model, handed to lm-evaluation-harness
            from eval.lm_harness import run_harness

            start = time.perf_counter()
            row["lm_eval"] = run_harness(model, tokenizer, *harness)
            row["seconds"]["lm_eval"] = round(time.perf_counter() - start, 3)
    return row, scores


def _short(x) -> str:
    return "–" if x is None else f"{x:.2f}"
