"""lm-evaluation-harness (EleutherAI, `lm-eval`) tasks on a checkpoint, folded into a Lethe
report: WMDP (`wmdp_bio`, `wmdp_cyber`, `wmdp_chem`; Li et al. 2024) for hazardous knowledge,
MMLU and the rest of the harness's catalogue for general utility, or local task YAMLs.

Optional: `pip install 'lethe-llm[lm-eval]'`. `unlearn eval MODEL --lm-eval wmdp_bio,mmlu`
hands each evaluated model, already loaded, to `lm_eval.simple_evaluate` through its `HFLM`
wrapper (the harness's own batching and prompts, unchanged) and writes the task scores into
results.json (each row's `lm_eval`) and a second table of results.md. `--lm-eval-include DIR`
adds directories of task YAMLs (a task with local data files runs offline); when every task
asked for is found there, the harness's built-in catalogue is not indexed at all (indexing it
takes ~20 s). Hub tasks download their data sets, so offline (HF_HUB_OFFLINE=1) they need
them in the local datasets cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lethe.errors import LetheError

log = logging.getLogger(__name__)

INSTALL = "pip install 'lethe-llm[lm-eval]' (or pip install lm-eval)"


@dataclass(frozen=True)
class HarnessSettings:
    """What `--lm-eval` runs."""

    tasks: tuple[str, ...]  # task or group names (wmdp_bio, mmlu, or a local YAML's `task:`)
    include: tuple[str, ...] = ()  # directories of local task YAMLs
    limit: int | None = None  # at most this many documents per task (smoke runs)
    num_fewshot: int | None = None  # few-shot examples (None: each task's default)
    batch_size: int = 8  # the harness's batch size


def parse_tasks(value: str | None) -> tuple[str, ...]:
    """`wmdp_bio,mmlu` → ("wmdp_bio", "mmlu")."""
    return tuple(t for t in (p.strip() for p in (value or "").split(",")) if t)


def _lm_eval():
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise LetheError(f"--lm-eval needs lm-evaluation-harness, which is not installed: "
                         f"{INSTALL}") from None
    from lm_eval.tasks import TaskManager

    return TaskManager


def task_manager(settings: HarnessSettings):
    """An `lm_eval.tasks.TaskManager` that knows every task of `settings`, or a LetheError
    naming those it does not know."""
    task_manager_cls = _lm_eval()
    include = [str(p) for p in settings.include] or None
    for defaults in ((False, True) if include else (True,)):
        manager = task_manager_cls(include_path=include, include_defaults=defaults)
        known = set(manager.all_tasks)
        missing = [t for t in settings.tasks if t not in known]
        if not missing:
            return manager
    raise LetheError(f"--lm-eval: unknown task(s) {', '.join(missing)} (not in lm-eval's "
                     f"catalogue{' or ' + ', '.join(include) if include else ''}); check the "
                     f"names (`lm-eval ls tasks`) or add --lm-eval-include DIR")


def _summary(result: dict, task: str, groups: set) -> dict:
    """{metric: value} of one task (a group's aggregate for groups such as mmlu), with the
    harness's ",none" filter suffix dropped and its bookkeeping keys left out."""
    table = (result.get("groups") or {}).get(task) if task in groups else None
    table = table or (result.get("results") or {}).get(task) or {}
    out = {}
    for key, value in table.items():
        name = key.split(",", 1)[0].strip()
        if name in ("alias", "name", "sample_len", "sample_count") or \
                not isinstance(value, (int, float)):
            continue
        out[name] = float(value)
    return out


def run_harness(model, tokenizer, settings: HarnessSettings, manager=None) -> dict:
    """{task: {metric: value}} of `model` on every task (the harness's stderr included as
    `<metric>_stderr`), plus "_meta" with the harness's version and settings."""
    manager = manager or task_manager(settings)
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from lethe.lm import model_device

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=settings.batch_size,
              device=str(model_device(model)))
    try:
        result = simple_evaluate(model=lm, tasks=list(settings.tasks), task_manager=manager,
                                 limit=settings.limit, num_fewshot=settings.num_fewshot,
                                 log_samples=False)
    except Exception as err:  # the harness raises all kinds (data sets, configs)
        raise LetheError(f"--lm-eval {','.join(settings.tasks)} failed: "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                         ) from None
    groups = set(getattr(manager, "all_groups", []) or [])
    out = {task: _summary(result, task, groups) for task in settings.tasks}
    out["_meta"] = {"lm_eval_version": result.get("lm_eval_version"),
                    "limit": settings.limit, "num_fewshot": settings.num_fewshot,
                    "n_samples": result.get("n-samples")}
    return out


def harness_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """(task, metric) columns of the report's harness table: every metric any row has, the
    stderr entries folded into their metric's cell."""
    cols = []
    for row in rows:
        for task, metrics in (row.get("lm_eval") or {}).items():
            if task.startswith("_"):
                continue
            for metric in metrics:
                if not metric.endswith("_stderr") and (task, metric) not in cols:
                    cols.append((task, metric))
    return cols
