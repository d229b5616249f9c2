"""`detox eval --preset`: the published evaluators' scorers, combined as their scripts do.

- ``paradetox`` (Logacheva et al. 2022; s-nlp/paradetox evaluation_detox/metric.py and
  metric_tools/): STA = 1 − argmax of `s-nlp/roberta_toxicity_classifier` (label 1 toxic),
  SIM = Wieting et al.'s subword-averaging cosine (eval/detox/wieting.py; not clipped; local
  files, no hub id: `--set scorers.sim.model=DIR` or LETHE_WIETING_SIM=DIR), FL = 1 − argmax of
  a CoLA classifier whose label 0 is "acceptable" on detokenised text (the scripts' fairseq
  classifier of Krishna et al. 2020, on the hub as `cointegrated/roberta-large-cola-krishna2020`),
  J = mean of STA·SIM·FL (`j_paradetox`; `get_j`).
- ``pan2024`` (PAN at CLEF 2024 / TextDetox; pan-webis-de/pan-code
  clef24/text-detoxification/evaluate.py): STA = softmax probability of the neutral class of
  `textdetox/xlmr-large-toxicity-classifier` (= 1 − P(toxic) of its two classes; 512 tokens),
  SIM = cosine of `sentence-transformers/LaBSE` embeddings (not clipped), chrF = sacrebleu's
  sentence chrF against the reference / 100, J = mean of STA·SIM·chrF (`j_clef2024`).
- ``offline``: Lethe's bundled scorers (alt-profanity-check, all-MiniLM-L6-v2 clipped at 0,
  SmolLM2 perplexity) and its default metrics; nothing is downloaded. Its J is not comparable
  with either published J (docs/detox.md).

A preset is a `scorers:` section and a metric list; `--recipe` / `--set scorers.*` still apply
on top (e.g. a local copy of a hub model: `--set scorers.sta.model=DIR`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    name: str
    doc: str  # one line for --help and results.md
    scorers: dict = field(default_factory=dict)  # kind -> scorer section (with name:)
    metrics: tuple[str, ...] | None = None  # default metrics (None = detox eval's defaults)

    def overrides(self) -> list[str]:
        """The `--set` lines that put this preset's scorers into a rewrite recipe."""
        return [f"scorers.{kind}={json.dumps(section)}" for kind, section in self.scorers.items()]


def _paradetox() -> Preset:
    return Preset(
        "paradetox", "ParaDetox's J: binary STA (roberta_toxicity_classifier) x Wieting SIM x "
                     "binary CoLA FL",
        scorers={
            "sta": {"name": "classifier", "model": "s-nlp/roberta_toxicity_classifier",
                    "toxic_label": "1", "decision": "argmax", "max_length": 512},
            "sim": {"name": "wieting", "model": os.environ.get("LETHE_WIETING_SIM", "")},
            "fl": {"name": "classifier", "model": "cointegrated/roberta-large-cola-krishna2020",
                   "label": "0", "binary": True, "detokenize": True, "max_length": 512}},
        metrics=("sta_bin", "sim", "fl", "j_paradetox"))


def _pan2024() -> Preset:
    return Preset(
        "pan2024", "PAN 2024's J: P(neutral) (xlmr-large-toxicity-classifier) x LaBSE cosine x "
                   "chrF",
        scorers={
            "sta": {"name": "classifier", "model": "textdetox/xlmr-large-toxicity-classifier",
                    "toxic_label": "1", "max_length": 512},
            "sim": {"name": "embedding", "model": "sentence-transformers/LaBSE", "clip": False}},
        metrics=("sta", "sim", "chrf", "j_clef2024"))


def _offline() -> Preset:
    return Preset("offline", "Lethe's bundled offline scorers and default metrics")


PRESETS = {"paradetox": _paradetox, "pan2024": _pan2024, "offline": _offline}


def get_preset(name: str) -> Preset:
    """The preset `name` (built when asked: the Wieting path is read from the environment)."""
    from lethe.errors import LetheError
    from lethe.recipe import nearest

    if name not in PRESETS:
        raise LetheError(f"unknown preset '{name}'{nearest(name, PRESETS)}; valid: "
                         f"{', '.join(PRESETS)}")
    return PRESETS[name]()
