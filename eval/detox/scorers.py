"""The `scorers:` recipe section (one STA, one SIM, one FL scorer) and the objects it builds.

    scorers:
      sta: {name: profanity}          # or {name: classifier, model: M, toxic_label: toxic}
    sta_clf: {name: classifier, model: paradetox}   # a second STA: the learned classifier
      sim: {name: embedding, model: minilm}   # or {name: bertscore, model: M}
      fl:  {name: perplexity, model: smollm2} # or {name: classifier, model: M, label: L}

Use from code (e.g. as RL rewards):

    from eval.detox.scorers import Scorers, ScorersConfig
    s = Scorers.from_config(ScorersConfig())
    s.sta.score(texts); s.sim.score(texts, sources); s.fl.score(texts)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from eval.detox.registry import create, scorer_field


@dataclass(frozen=True)
class ScorersConfig:
    sta: Any = scorer_field("sta", "profanity")  # STA: P(non-toxic) (profanity | classifier)
    sim: Any = scorer_field("sim", "embedding")  # SIM: rewrite vs source (embedding | bertscore)
    fl: Any = scorer_field("fl", "perplexity")  # FL: fluency (perplexity | classifier)
    # a second STA scorer, reported beside the first (sta_clf, sta_bin_clf, j_clf) and usable
    # in best-of-n reranking: by default the shipped ParaDetox toxicity classifier (an
    # embedding head on the bundled MiniLM, eval/detox/head.py), which word deletion cannot
    # satisfy as easily as a word-list scorer
    sta_clf: Any = scorer_field("sta", "classifier", model="paradetox", toxic_label="toxic")

    @staticmethod
    def names() -> tuple[str, ...]:
        return ("sta", "sim", "fl", "sta_clf")


@dataclass
class Scorers:
    """One built scorer per kind; models load on their first `score` call."""

    sta: Any
    sim: Any
    fl: Any
    sta_clf: Any = None

    @classmethod
    def from_config(cls, cfg: ScorersConfig) -> "Scorers":
        return cls(**{name: create(getattr(cfg, name)) for name in ScorersConfig.names()})

    def components(self, names: Sequence[str], texts: list[str],
                   sources: list[str]) -> dict[str, list[float]]:
        """{name: per-text values} for names among sta, sim, fl, sta_clf."""
        table = {"sta": lambda: self.sta.score(texts),
                 "sim": lambda: self.sim.score(texts, sources),
                 "fl": lambda: self.fl.score(texts),
                 "sta_clf": lambda: self.sta_clf.score(texts)}
        return {name: table[name]() for name in names}
