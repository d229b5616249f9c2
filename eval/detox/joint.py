"""Reference metrics (chrF, BLEU, ROUGE-L) and the joint detox scores, behind a metric registry.

Components per example i (computed on demand, once, by ``Components``):
  sta_i      = 1 - P_toxic(rewrite_i)                      (soft STA, the STA scorer)
  sta_bin_i  = 1[P_toxic(rewrite_i) < threshold]          (binary STA; or 1[toxic is not
                                                           the argmax class], decision argmax)
  sim_i      = SIM(rewrite_i, source_i)                    (the SIM scorer)
  fl_i       = FL(rewrite_i)                               (the FL scorer)
  chrf_i     = sentence chrF(rewrite_i, references_i) / 100  (sacrebleu: char 6-grams, beta 2)

Joint scores, each a mean over examples of a per-example product:
  j_paradetox = mean_i sta_bin_i * sim_i * fl_i   (ParaDetox, Logacheva et al. 2022: J)
  j_clef2024  = mean_i sta_i * sim_i * chrf_i     (TextDetox / PAN at CLEF 2024: J with soft STA
                                                   and chrF against the references as FL)
  j_bin_chrf  = mean_i sta_bin_i * sim_i * chrf_i (the J of the anchors in BENCHMARKS.md)

Every score is reported in [0, 1] (BLEU and chrF are sacrebleu's 0-100 scores / 100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

from lethe.errors import LetheError


# ---------------------------------------------------------------------------------------------
# pure per-example / corpus functions


def chrf(hyp: str, refs: Sequence[str]) -> float:
    """Sentence chrF (best over references, sacrebleu defaults) in [0, 1]."""
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(hyp, list(refs)).score / 100.0


def _ref_streams(refs: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-example reference lists -> sacrebleu's streams (None where an example has fewer)."""
    width = max(len(r) for r in refs)
    return [[r[j] if j < len(r) else None for r in refs] for j in range(width)]


def corpus_chrf(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    from sacrebleu.metrics import CHRF

    return CHRF().corpus_score(list(hyps), _ref_streams(refs)).score / 100.0


def corpus_bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu, 13a tokenisation, exponential smoothing) in [0, 1]."""
    from sacrebleu.metrics import BLEU

    return BLEU().corpus_score(list(hyps), _ref_streams(refs)).score / 100.0


def rouge_l(hyp: str, refs: Sequence[str], scorer=None) -> float:
    """ROUGE-L F1 (rouge-score, no stemming), best over references."""
    if scorer is None:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return max(scorer.score(ref, hyp)["rougeL"].fmeasure for ref in refs)


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if len(values) else math.nan


def products(*columns: Sequence[float]) -> list[float]:
    return [math.prod(vals) for vals in zip(*columns)]


# ---------------------------------------------------------------------------------------------
# components, computed lazily from the scorers


class Components:
    """The per-example columns of one evaluation, each computed on first use.

    `scorers` has `.sta`, `.sim`, `.fl` (see eval.detox.scorers); `refs` is one list of
    reference strings per example, or None.
    """

    def __init__(self, texts: Sequence[str], sources: Sequence[str],
                 refs: Sequence[Sequence[str]] | None, scorers):
        self.texts = list(texts)
        self.sources = list(sources)
        self.refs = [list(r) for r in refs] if refs is not None else None
        self.scorers = scorers

    @cached_property
    def toxic_prob(self) -> list[float]:
        return self.scorers.sta.toxic_prob(self.texts)

    @cached_property
    def sta(self) -> list[float]:
        return [1.0 - p for p in self.toxic_prob]

    @cached_property
    def sta_bin(self) -> list[float]:
        sta = self.scorers.sta
        if getattr(sta, "decision", "threshold") == "argmax":  # ParaDetox: 1 - argmax
            return sta.non_toxic(self.texts)
        return [float(p < sta.threshold) for p in self.toxic_prob]

    @cached_property
    def sim(self) -> list[float]:
        return self.scorers.sim.score(self.texts, self.sources)

    @cached_property
    def fl(self) -> list[float]:
        return self.scorers.fl.score(self.texts)

    @cached_property
    def chrf(self) -> list[float]:
        return [chrf(h, r) for h, r in zip(self.texts, self.need_refs())]

    @cached_property
    def rouge_l(self) -> list[float]:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        return [rouge_l(h, r, scorer) for h, r in zip(self.texts, self.need_refs())]

    def need_refs(self) -> list[list[str]]:
        if self.refs is None:
            raise LetheError("this metric needs references; pass --references FILE (or give "
                             "each line a 'references' field)")
        return self.refs


# ---------------------------------------------------------------------------------------------
# the metric registry


@dataclass(frozen=True)
class Metric:
    name: str
    doc: str
    needs_refs: bool
    per_example: Callable[[Components], list[float]] | None  # averaged for the summary
    corpus: Callable[[Components], float] | None  # a corpus-level value
    kinds: tuple[str, ...] = ()  # the scorers it reads (sta, sim, fl), for the preflight


METRICS: dict[str, Metric] = {}


def metric(name: str, doc: str, *, needs_refs: bool = False, corpus: bool = False,
           kinds: tuple[str, ...] = ()):
    """Register `fn(components)` as metric `name` (per-example list, or a corpus value)."""

    def deco(fn):
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(name, doc, needs_refs, None if corpus else fn,
                               fn if corpus else None, kinds)
        return fn

    return deco


def scorer_kinds(names: Sequence[str]) -> list[str]:
    """The scorer kinds the metrics `names` read, in KINDS order."""
    used = {k for n in names for k in METRICS[n].kinds}
    return [k for k in ("sta", "sim", "fl") if k in used]


metric("sta", "mean soft STA, 1 - P(toxic)", kinds=("sta",))(lambda c: c.sta)
metric("sta_bin", "share of rewrites classified non-toxic", kinds=("sta",))(lambda c: c.sta_bin)
metric("sim", "mean similarity of rewrite and source", kinds=("sim",))(lambda c: c.sim)
metric("fl", "mean fluency", kinds=("fl",))(lambda c: c.fl)
metric("chrf", "mean sentence chrF vs references / 100", needs_refs=True)(lambda c: c.chrf)
metric("chrf_corpus", "corpus chrF vs references / 100", needs_refs=True, corpus=True)(
    lambda c: corpus_chrf(c.texts, c.need_refs()))
metric("bleu", "corpus BLEU vs references / 100", needs_refs=True, corpus=True)(
    lambda c: corpus_bleu(c.texts, c.need_refs()))
metric("rouge_l", "mean ROUGE-L F1 vs references", needs_refs=True)(lambda c: c.rouge_l)
metric("j_paradetox", "mean of STA_bin * SIM * FL", kinds=("sta", "sim", "fl"))(
    lambda c: products(c.sta_bin, c.sim, c.fl))
metric("j_clef2024", "mean of STA * SIM * chrF", needs_refs=True, kinds=("sta", "sim"))(
    lambda c: products(c.sta, c.sim, c.chrf))
metric("j_bin_chrf", "mean of STA_bin * SIM * chrF (BENCHMARKS.md's J)", needs_refs=True,
       kinds=("sta", "sim"))(lambda c: products(c.sta_bin, c.sim, c.chrf))

DEFAULT_METRICS = ("sta", "sta_bin", "sim", "fl", "j_paradetox")
DEFAULT_REF_METRICS = ("chrf", "chrf_corpus", "bleu", "rouge_l", "j_clef2024", "j_bin_chrf")


def default_metrics(have_refs: bool) -> tuple[str, ...]:
    return DEFAULT_METRICS + (DEFAULT_REF_METRICS if have_refs else ())


def check_metrics(names: Sequence[str], have_refs: bool) -> list[str]:
    from lethe.recipe import nearest

    for name in names:
        if name not in METRICS:
            raise LetheError(f"unknown metric '{name}'{nearest(name, METRICS)}; valid: "
                             f"{', '.join(sorted(METRICS))}")
        if METRICS[name].needs_refs and not have_refs:
            raise LetheError(f"metric '{name}' needs references; pass --references FILE")
    return list(dict.fromkeys(names))


def evaluate(components: Components, names: Sequence[str]) -> tuple[dict, dict]:
    """(summary {metric: value}, per_example {metric: [values]}) for the named metrics."""
    summary, per_example = {}, {}
    for name in names:
        m = METRICS[name]
        if m.per_example is not None:
            values = [float(v) for v in m.per_example(components)]
            per_example[name] = values
            summary[name] = mean(values)
        else:
            summary[name] = float(m.corpus(components))
    return summary, per_example
