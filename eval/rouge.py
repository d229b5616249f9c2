"""ROUGE-L F1 of one (reference, prediction) pair, as MUSE scores it.

`rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)`: its default tokenizer
lower-cases and keeps runs of [a-z0-9] as tokens; F1 of the longest common subsequence.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l_f1(reference: str, prediction: str) -> float:
    """ROUGE-L F-measure in [0, 1] of `prediction` against `reference`."""
    return float(_scorer().score(reference, prediction)["rougeL"].fmeasure)


def rouge_l_recall(reference: str, prediction: str) -> float:
    """ROUGE-L recall (LCS length / reference length), kept alongside F1 in the logs."""
    return float(_scorer().score(reference, prediction)["rougeL"].recall)


@lru_cache(maxsize=1)
def _stemmed_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall_stemmed(reference: str, prediction: str) -> float:
    """ROUGE-L recall with the Porter stemmer, as TOFU and open-unlearning score answers."""
    return float(_stemmed_scorer().score(reference, prediction)["rougeL"].recall)
