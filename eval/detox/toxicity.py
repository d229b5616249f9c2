"""STA (style transfer accuracy): how likely a text is *not* toxic or inappropriate.

Every STA scorer answers ``toxic_prob(texts)`` (probability of the offensive class) and
``score(texts) = 1 - toxic_prob`` (the soft STA of TextDetox/CLEF 2024). The binary STA of
ParaDetox (Logacheva et al., 2022) is ``non_toxic(texts)``: 1.0 where ``toxic_prob <
threshold``, else 0.0.

- ``profanity``: alt-profanity-check, a linear model on bag-of-words (offline, instant);
- ``classifier``: any Hugging Face sequence classifier (hub id or local path) with a
  configurable name (or index) of its toxic/inappropriate label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eval.detox.registry import Need, batches, register
from lethe.lm import load_for_inference
from lethe.errors import LetheError


class STAScorer:
    threshold: float = 0.5

    def toxic_prob(self, texts: list[str]) -> list[float]:
        raise NotImplementedError

    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        return [1.0 - p for p in self.toxic_prob(list(texts))]

    def non_toxic(self, texts: list[str]) -> list[float]:
        return [float(p < self.threshold) for p in self.toxic_prob(list(texts))]


class ProfanitySTA(STAScorer):
    """STA from `profanity_check.predict_prob` (alt-profanity-check)."""

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self._predict = None

    def toxic_prob(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        if self._predict is None:
            try:
                from profanity_check import predict_prob
            except ImportError:
                raise LetheError("the 'profanity' STA scorer needs alt-profanity-check; "
                                 "pip install alt-profanity-check") from None
            self._predict = predict_prob
        return [float(p) for p in self._predict(list(texts))]


class HFClassifierProb:
    """Probability of one label of a Hugging Face sequence classifier, batched, lazy-loaded."""

    def __init__(self, model: str, label: str, device: str = "auto", batch_size: int = 32,
                 max_length: int = 256):
        self.model_spec = model
        self.label = str(label)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = self._tokenizer = self._index = None

    def _load(self):
        from lethe.loading import load_tokenizer

        model = load_for_inference(self.model_spec, dtype="float32", device=self.device,
                                   task="sequence-classification")
        self._model = model
        self._tokenizer = load_tokenizer(self.model_spec)
        self._index = self.label_index(model.config.id2label, self.label, self.model_spec)

    @staticmethod
    def label_index(id2label: dict, label: str, spec: str = "model") -> int:
        """Index of `label` among the classifier's labels (case-insensitive name, or an index)."""
        names = {int(i): str(n) for i, n in id2label.items()}
        for i, name in names.items():
            if name.lower() == label.lower():
                return i
        if label.isdigit() and int(label) in names:
            return int(label)
        raise LetheError(f"classifier {spec} has no label '{label}' (labels: "
                         f"{', '.join(f'{i}={n}' for i, n in sorted(names.items()))}); set the "
                         f"scorer's label to one of them")

    def probs(self, texts: list[str]) -> list[float]:
        """P(label) of each text."""
        return [p for p, _ in self.predict(texts)]

    def predict(self, texts: list[str]) -> list[tuple[float, bool]]:
        """(P(label), whether the label is the argmax class) of each text. The argmax is the
        lowest index among tied maxima (torch.argmax, as ParaDetox's scripts take it)."""
        import torch

        if not texts:
            return []
        if self._model is None:
            self._load()
        out: list[tuple[float, bool]] = []
        device = next(self._model.parameters()).device
        for chunk in batches(list(texts), self.batch_size):
            enc = self._tokenizer(chunk, return_tensors="pt", padding=True, truncation=True,
                                  max_length=self.max_length).to(device)
            with torch.no_grad():
                logits = self._model(**enc).logits.float()  # (B, C)
            if logits.shape[-1] == 1:  # a single-logit head is a sigmoid classifier
                p = torch.sigmoid(logits[:, 0])
                p = p if self._index == 0 else 1 - p
                top = (p > 0.5) if self._index == 0 else (p >= 0.5)  # sigmoid ≥ 0 means 1
            else:
                p = logits.softmax(-1)[:, self._index]
                top = logits.argmax(-1) == self._index
            out.extend(zip(p.tolist(), top.tolist()))
        return out


class ClassifierSTA(STAScorer):
    """STA = 1 - P(toxic_label) under a Hugging Face sequence classifier; binary STA by a
    threshold on that probability or, with decision="argmax", 1 unless the toxic label is the
    classifier's argmax (ParaDetox: `1 - logits.argmax(1)`)."""

    def __init__(self, model: str, toxic_label: str = "toxic", threshold: float = 0.5,
                 device: str = "auto", batch_size: int = 32, max_length: int = 256,
                 decision: str = "threshold"):
        self.threshold = threshold
        self.decision = decision
        self.classifier = HFClassifierProb(model, toxic_label, device, batch_size, max_length)
        self._seen: dict[str, tuple[float, bool]] = {}  # text -> (P(toxic), toxic is argmax)

    def _predict(self, texts: list[str]) -> list[tuple[float, bool]]:
        todo = list(dict.fromkeys(t for t in texts if t not in self._seen))
        self._seen.update(zip(todo, self.classifier.predict(todo)))
        return [self._seen[t] for t in texts]

    def toxic_prob(self, texts: list[str]) -> list[float]:
        return [p for p, _ in self._predict(list(texts))]

    def non_toxic(self, texts: list[str]) -> list[float]:
        if self.decision != "argmax":
            return super().non_toxic(texts)
        return [0.0 if top else 1.0 for _, top in self._predict(list(texts))]


@register("sta", "profanity", ProfanitySTA)
@dataclass(frozen=True)
class ProfanityConfig:
    name: str = "profanity"
    threshold: float = 0.5  # toxic_prob below this counts as non-toxic for binary STA

    def needs(self) -> list[Need]:
        return [Need(package="profanity_check")]


@register("sta", "classifier", ClassifierSTA)
@dataclass(frozen=True)
class ClassifierConfig:
    name: str = "classifier"
    model: str = ""  # hub id or local directory of a sequence classifier (required)
    toxic_label: str = "toxic"  # its offensive/inappropriate label name (or index)
    threshold: float = 0.5  # binary STA: toxic_prob below this counts as non-toxic
    device: str = "auto"  # auto = first accelerator torch sees, else cpu
    batch_size: int = 32
    max_length: int = 256  # tokens; longer texts are truncated
    decision: Literal["threshold", "argmax"] = "threshold"  # binary STA: P(toxic) < threshold,
    #                                    or "argmax": the toxic label is not the top class

    def __post_init__(self):
        if not self.model:
            raise ValueError("scorers.sta.model is required for the classifier scorer "
                             "(a hub id or a local model directory)")

    def needs(self) -> list[Need]:
        return [Need(self.model, "sequence-classification", label=self.toxic_label)]
