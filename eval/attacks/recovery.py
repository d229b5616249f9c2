"""How much of what unlearning removed an attack brings back: recovery with bootstrap intervals.

For a metric m measured on the same rows (questions, prompts) for three models,

    recovery = (m(attacked) − m(unlearned)) / (m(target) − m(unlearned))

0 = the attack brought nothing back, 1 = the model is as good as before unlearning on these
rows, > 1 better than before, < 0 the attack removed even more. It is defined for metrics that
unlearning pushes down (VerbMem_f, KnowMem_f: `direction == "down"`) and only where unlearning
changed something (target ≠ unlearned on these rows; else it is None). Its 95% interval is a
paired percentile bootstrap over rows (`eval.stats.bootstrap_rows_ci`): a resample draws rows,
and all three models' scores of a drawn row go together.

Which rows count: a relearning attack trained on part of the forget set is measured on the rest
only (`held_out_rows`): a row is held out unless its query (the first field of the metric's
first table: VerbMem's prompt, KnowMem's question) occurs verbatim in the relearning text.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from eval.stats import CONFIDENCE, N_RESAMPLES, Score, bootstrap_rows_ci

EPS = 1e-9  # |target − unlearned| below this: nothing was unlearned on these rows


def held_out_rows(queries: Sequence[str], texts: Sequence[str]) -> list[int]:
    """Indices of the `queries` that occur in none of `texts` (verbatim, whitespace-trimmed)."""
    return [i for i, q in enumerate(queries)
            if not (isinstance(q, str) and q.strip() and any(q.strip() in t for t in texts))]


def recovery_ratio(attacked: float, unlearned: float, target: float) -> float | None:
    """(attacked − unlearned) / (target − unlearned); None when target == unlearned."""
    gap = target - unlearned
    return None if abs(gap) < EPS else (attacked - unlearned) / gap


def recovery_score(attacked: Sequence[float], unlearned: Sequence[float],
                   target: Sequence[float], *, confidence: float = CONFIDENCE,
                   n_resamples: int = N_RESAMPLES, seed: int = 0) -> Score:
    """Recovery over aligned per-row scores of the three models, with its paired interval."""
    a, u, t = (np.asarray(x, dtype=np.float64) for x in (attacked, unlearned, target))
    if not (len(a) == len(u) == len(t)):
        raise ValueError(f"per-row scores differ in length: {len(a)}, {len(u)}, {len(t)}")
    meta = {"n": int(len(a)), "confidence": confidence, "n_resamples": n_resamples,
            "seed": seed}
    if not len(a):
        return Score(None, meta=meta)
    value = recovery_ratio(a.mean(), u.mean(), t.mean())
    if value is None:
        return Score(None, meta={**meta, "undefined": "target and unlearned model score the "
                                                      "same on these rows"})

    def stat(idx):  # idx (R, n) -> (R,)
        gap = t[idx].mean(-1) - u[idx].mean(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(gap) < EPS, np.nan, (a[idx].mean(-1) - u[idx].mean(-1)) / gap)

    low, high = bootstrap_rows_ci(len(a), stat, confidence=confidence,
                                  n_resamples=n_resamples, seed=seed)
    return Score(value, low, high, meta=meta)


def row_values(row: dict, metric: str) -> list[float] | None:
    """A suite row's per-example scores of `metric` (None when they are not one list)."""
    per = row["scores"].get(metric, {}).get("per_example")
    return per if isinstance(per, list) else None


def _mean(values: Sequence[float], rows: Sequence[int]) -> float | None:
    return float(np.mean([values[i] for i in rows])) if rows else None


def compare(rows: dict[str, dict], label: str, metric: str, direction: str,
            measured: Sequence[int] | None, settings: dict) -> dict:
    """One attacked model against the unlearned model and the target on `metric`.

    rows: suite rows by label ("target", "unlearned", `label`); measured: row indices the
    metric is averaged over (None = all). Returns target/before/after means and recovery.
    """
    values = {k: row_values(rows[k], metric) for k in ("target", "unlearned", label)}
    if any(v is None for v in values.values()):  # e.g. PrivLeak: no per-row scores
        return {"target": rows["target"]["scores"][metric]["value"],
                "before": rows["unlearned"]["scores"][metric]["value"],
                "after": rows[label]["scores"][metric]["value"], "recovery": None, "n": None}
    keep = list(range(len(values["target"]))) if measured is None else list(measured)
    out = {"target": _mean(values["target"], keep), "before": _mean(values["unlearned"], keep),
           "after": _mean(values[label], keep), "n": len(keep), "recovery": None}
    if direction == "down":
        pick = [[v[i] for i in keep] for v in (values[label], values["unlearned"],
                                               values["target"])]
        out["recovery"] = recovery_score(*pick, confidence=settings["confidence"],
                                         n_resamples=settings["n_resamples"],
                                         seed=settings["seed"]).to_dict()
        out["recovery"].pop("per_example", None)
    return out
