"""FL (fluency) scorers.

- ``perplexity`` (offline default, under SmolLM2-135M-Instruct): the mean per-token negative
  log-likelihood ``nll`` (nats) of the text after one start token, mapped to (0, 1] by

      FL = exp(-max(0, nll - ln(ppl_ok)) / tau)

  i.e. 1.0 for any text at most as surprising as perplexity ``ppl_ok``, then falling by a factor
  e for every ``tau`` nats of extra mean surprise. The defaults (``ppl_ok`` = 300, ``tau`` = 2)
  were set on the first 60 ParaDetox rows under SmolLM2 (see docs/detox.md): the human neutral
  rewrites have median perplexity 336 (FL 0.94; 75th percentile 890, FL 0.58), the same
  sentences with their words shuffled 6,516 (FL 0.21). An empty text scores 0.0 (nothing to
  read is not a fluent rewrite).
- ``classifier``: the probability of the "acceptable" label of any Hugging Face sequence
  classifier (e.g. one trained on CoLA, as ParaDetox does), or with ``binary`` whether that
  label is the classifier's argmax (ParaDetox's FL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eval.detox.registry import Need, register
from eval.detox.toxicity import HFClassifierProb


def fl_from_nll(nll: float, ppl_ok: float, tau: float) -> float:
    """The (0, 1] fluency of a text whose mean token NLL is `nll` nats (see module doc)."""
    if not math.isfinite(nll):
        return 0.0
    return math.exp(-max(0.0, nll - math.log(ppl_ok)) / tau)


class PerplexityFluency:
    """FL from the perplexity of each text under a causal LM, loaded on first use."""

    def __init__(self, model: str = "smollm2", ppl_ok: float = 300.0, tau: float = 2.0,
                 device: str = "auto", batch_size: int = 16, max_length: int = 256,
                 dtype: str = "float32", start_token: str = "<|endoftext|>"):
        if ppl_ok <= 0 or tau <= 0:
            raise ValueError("perplexity fluency: ppl_ok and tau must be positive")
        self.model_spec = model
        self.ppl_ok = ppl_ok
        self.tau = tau
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.dtype = dtype
        self.start_token = start_token
        self._lm = self._start = None

    def _load(self):
        from lethe.lm import LM

        self._lm = LM.load(self.model_spec, dtype=self.dtype, device=self.device,
                           progress=False)

    def start_id(self, tok) -> int:
        """The token texts are scored after: `start_token` if the vocabulary has it as one token,
        else BOS, else EOS. A document separator works best: SmolLM2's BOS is the chat marker
        `<|im_start|>`, after which a role name is expected ("The cat sat on the mat." has
        perplexity 436 after it, 20 after `<|endoftext|>`)."""
        start = tok.get_vocab().get(self.start_token) if self.start_token else None
        if start is not None:
            return start
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def nll(self, texts: list[str]) -> list[float]:
        """Mean NLL (nats/token) of each text given one start token; inf for an empty text."""
        if self._lm is None:
            self._load()
        tok = self._lm.tokenizer
        if self._start is None:
            self._start = self.start_id(tok)
        ids = [[self._start] + tok(t, add_special_tokens=False)["input_ids"][:self.max_length]
               for t in texts]
        scores = self._lm.score_ids(ids, self.batch_size)  # token t+1 predicted from position t
        return [float(-s.logprobs.astype(np.float64).mean()) if len(s.logprobs) else math.inf
                for s in scores]

    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        if not texts:
            return []
        return [fl_from_nll(x, self.ppl_ok, self.tau) for x in self.nll(list(texts))]


def detokenize(text: str) -> str:
    """ParaDetox's CoLA input clean-up (s-nlp/paradetox evaluation_detox/metric_tools/
    fluency.py): no space before . , ! ? ) and none after (."""
    for a, b in ((" .", "."), (" ,", ","), (" !", "!"), (" ?", "?"), (" )", ")"), ("( ", "(")):
        text = text.replace(a, b)
    return text


class ClassifierFluency:
    """FL = P(acceptable) under a Hugging Face acceptability classifier (e.g. CoLA-trained), or
    with `binary` 1.0 where "acceptable" is the classifier's argmax class, else 0.0 (ParaDetox's
    FL: `1 - predictions.argmax(1)` of a CoLA classifier whose label 0 is acceptable)."""

    def __init__(self, model: str, label: str = "acceptable", device: str = "auto",
                 batch_size: int = 32, max_length: int = 256, binary: bool = False,
                 detokenize: bool = False):
        self.classifier = HFClassifierProb(model, label, device, batch_size, max_length)
        self.binary, self.detokenize = binary, detokenize

    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        texts = [detokenize(t) for t in texts] if self.detokenize else list(texts)
        if not self.binary:
            return self.classifier.probs(texts)
        return [1.0 if top else 0.0 for _, top in self.classifier.predict(texts)]


@register("fl", "perplexity", PerplexityFluency)
@dataclass(frozen=True)
class PerplexityConfig:
    name: str = "perplexity"
    model: str = "smollm2"  # causal LM spec (hub id, dir, GGUF, `smollm2`)
    ppl_ok: float = 300.0  # perplexity at or below which FL = 1
    tau: float = 2.0  # nats of extra mean surprise per e-fold drop of FL
    device: str = "auto"
    batch_size: int = 16
    max_length: int = 256  # tokens scored per text
    dtype: str = "float32"
    start_token: str = "<|endoftext|>"  # scored after this token (falls back to BOS, then EOS)

    def needs(self) -> list[Need]:
        return [Need(self.model, "causal-lm")]


@register("fl", "classifier", ClassifierFluency)
@dataclass(frozen=True)
class ClassifierFLConfig:
    name: str = "classifier"
    model: str = ""  # acceptability classifier (hub id or local dir; required)
    label: str = "acceptable"  # name (or index) of its fluent/acceptable label
    device: str = "auto"
    batch_size: int = 32
    max_length: int = 256
    binary: bool = False  # FL = 1[label is the argmax class] (ParaDetox), not P(label)
    detokenize: bool = False  # join " ." " ," " !" " ?" " )" "( " first (ParaDetox's CoLA input)

    def __post_init__(self):
        if not self.model:
            raise ValueError("scorers.fl.model is required for the classifier fluency scorer")

    def needs(self) -> list[Need]:
        return [Need(self.model, "sequence-classification", label=self.label)]
