"""Reward callables for RL from machine feedback (Ziegenbein et al., ACL 2024).

The paper rewards a rewrite y of argument x with
    R(x, y) = w_app * c_app(y) + w_sim * c_sim(x, y)
where c_app is a classifier's P(appropriate | y) and c_sim a similarity to the original; the
weightings (w_app, w_sim) trace the trade-off between appropriateness and content preservation.

Each part here is a small callable in TRL's reward-function form,
    f(prompts, completions, completion_ids, source, log_metric, ...) -> list[float],
that wraps a batch scorer `score(texts, sources=None) -> list[float]` from `eval.detox`
(toxicity/appropriateness classifier, embedding or BERTScore similarity, fluency) — the same
scorers `detox eval` reports, so the policy is trained on what it is judged by. `source` is the
dataset column holding the original text; TRL passes every non-prompt column as a keyword.

Combining the parts:
- arithmetic (default): one callable per part and `reward_weights` = w / sum(w); TRL's GRPO and
  RLOO add them (sum_i w_i r_i = the weighted arithmetic mean) and log each part as
  `rewards/<part>/mean`.
- harmonic: one callable computing sum(w) / sum_i(w_i / r_i) (parts clipped to >= `eps`, since a
  harmonic mean needs positive values), logging each part's batch mean as `reward_parts/<part>`
  through TRL's `log_metric`.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Protocol, Sequence

from lethe.errors import LetheError

log = logging.getLogger(__name__)

HARMONIC_EPS = 1e-3  # floor of each part in the harmonic mean (r <= 0 would be undefined)
SOURCE_PARTS = ("similarity", "length")  # parts that compare the rewrite with the original


class Scorer(Protocol):
    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]: ...


def completion_texts(completions: Sequence) -> list[str]:
    """Plain text of TRL completions: strings, or conversational [{"role", "content"}] lists."""
    out = []
    for c in completions:
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, (list, tuple)) and c and isinstance(c[-1], Mapping):
            out.append(str(c[-1].get("content", "")))
        else:
            raise LetheError(f"reward: cannot read a completion of type {type(c).__name__}; "
                             f"expected a string or a list of chat messages")
    return out


def cleaned(completions: Sequence, clean: Callable[[str], str] | None) -> list[str]:
    texts = completion_texts(completions)
    return [clean(t) for t in texts] if clean is not None else texts


# ---------------------------------------------------------------------------------------------
# a part that needs no model


def length_ratio(text: str, source: str) -> float:
    """min(a, b) / max(a, b) of the word counts: 1 for equal length, -> 0 as they diverge."""
    a, b = len(text.split()), len(source.split())
    if a == b:
        return 1.0
    return min(a, b) / max(a, b)


class LengthScorer:
    """The length penalty as a batch scorer (same interface as the eval.detox scorers)."""

    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        if sources is None or len(sources) != len(texts):
            raise LetheError("length reward: needs one original text per rewrite")
        return [length_ratio(t, s) for t, s in zip(texts, sources)]


# ---------------------------------------------------------------------------------------------
# combining


def normalised(weights: Mapping[str, float]) -> dict[str, float]:
    """Positive weights scaled to sum to 1 (zero weights dropped: that part is off)."""
    kept = {k: float(v) for k, v in weights.items() if v > 0}
    total = sum(kept.values())
    if total <= 0:
        raise LetheError("rewards: at least one weight must be > 0")
    return {k: v / total for k, v in kept.items()}


def combine(parts: Mapping[str, Sequence[float]], weights: Mapping[str, float],
            how: str = "arithmetic", eps: float = HARMONIC_EPS) -> list[float]:
    """Weighted arithmetic mean sum_i w_i r_i / sum_i w_i, or weighted harmonic mean
    sum_i w_i / sum_i (w_i / max(r_i, eps)), per example."""
    w = normalised(weights)
    n = {len(parts[k]) for k in w}
    if len(n) != 1:
        raise LetheError(f"rewards: parts have different lengths {sorted(n)}")
    out = []
    for i in range(n.pop()):
        if how == "arithmetic":
            out.append(sum(w[k] * float(parts[k][i]) for k in w))
        elif how == "harmonic":
            out.append(1.0 / sum(w[k] / max(float(parts[k][i]), eps) for k in w))
        else:
            raise LetheError(f"rewards.combine: unknown '{how}' (arithmetic, harmonic)")
    return out


# ---------------------------------------------------------------------------------------------
# TRL reward callables


class PartReward:
    """One reward part as a TRL reward function (its name is what TRL logs). `clean` maps a
    completion to the rewrite that is scored (e.g. `detox rewrite`'s first-line cleaning)."""

    def __init__(self, name: str, scorer: Scorer, needs_source: bool = False,
                 clean: Callable[[str], str] | None = None):
        self.__name__ = name  # TRL names the reward after __name__: rewards/<name>/mean
        self.scorer = scorer
        self.needs_source = needs_source
        self.clean = clean

    def __call__(self, prompts=None, completions=(), source=None, **kwargs) -> list[float]:
        texts = cleaned(completions, self.clean)
        return score_part(self.__name__, self.scorer, texts, source if self.needs_source
                          else None, self.needs_source)


def score_part(name: str, scorer: Scorer, texts: list[str], sources, needs_source: bool):
    if needs_source and sources is None:
        raise LetheError(f"reward '{name}' compares with the original text but the dataset has "
                         f"no 'source' column")
    values = scorer.score(texts, sources=list(sources) if sources is not None else None)
    values = [float(v) for v in values]
    if len(values) != len(texts):
        raise LetheError(f"reward '{name}': scorer returned {len(values)} values for "
                         f"{len(texts)} texts")
    return values


class CombinedReward:
    """All parts in one TRL reward function, combined by `how`; parts go to `log_metric`."""

    __name__ = "reward"

    def __init__(self, scorers: Mapping[str, Scorer], weights: Mapping[str, float],
                 how: str = "harmonic", clean: Callable[[str], str] | None = None):
        self.weights = normalised(weights)
        self.scorers = {k: scorers[k] for k in self.weights}
        self.how = how
        self.clean = clean
        self.__name__ = f"{how}_mean"

    def __call__(self, prompts=None, completions=(), source=None, log_metric=None,
                 **kwargs) -> list[float]:
        texts = cleaned(completions, self.clean)
        parts = {k: score_part(k, s, texts, source if k in SOURCE_PARTS else None,
                               k in SOURCE_PARTS) for k, s in self.scorers.items()}
        if log_metric is not None:
            for k, v in parts.items():
                log_metric(f"reward_parts/{k}", sum(v) / max(len(v), 1))
        return combine(parts, self.weights, self.how)


def reward_functions(scorers: Mapping[str, Scorer], weights: Mapping[str, float],
                     how: str = "arithmetic", clean: Callable[[str], str] | None = None
                     ) -> tuple[list[Callable], list[float] | None]:
    """(reward_funcs, reward_weights) for GRPOTrainer / RLOOTrainer."""
    w = normalised(weights)
    missing = [k for k in w if k not in scorers]
    if missing:
        raise LetheError(f"rewards: no scorer for {', '.join(missing)}")
    if how == "arithmetic":
        funcs = [PartReward(k, scorers[k], needs_source=k in SOURCE_PARTS, clean=clean)
                 for k in w]
        return funcs, [w[k] for k in w]
    return [CombinedReward(scorers, w, how, clean)], None


# ---------------------------------------------------------------------------------------------
# scorers from a recipe


def build_scorers(rewards, device=None, need=("appropriateness",)) -> dict[str, Scorer]:
    """The eval.detox scorer of every part with a weight > 0 (and of the parts in `need`, e.g.
    the classifier of the prompt filter). Models load on first use. A scorer configured with
    `device: auto` is put on `device` (this rank's own accelerator under a launcher)."""
    import dataclasses

    from eval.detox.registry import create

    weights = rewards.weights_dict()
    out: dict[str, Scorer] = {}
    for part in ("appropriateness", "similarity", "fluency"):
        if weights[part] > 0 or part in need:
            cfg = getattr(rewards, part)
            if device is not None and getattr(cfg, "device", None) == "auto":
                cfg = dataclasses.replace(cfg, device=str(device))
            out[part] = create(cfg)
    if weights["length"] > 0:
        out["length"] = LengthScorer()
    return out


# ---------------------------------------------------------------------------------------------
# the prompt filter (as in the paper, only arguments the classifier deems inappropriate are
# rewritten)


def inappropriate_rows(p_appropriate: Sequence[float], threshold: float = 0.5) -> list[int]:
    """Indices whose P(inappropriate) = 1 - P(appropriate) is at least `threshold`."""
    return [i for i, p in enumerate(p_appropriate) if 1.0 - float(p) >= threshold]
