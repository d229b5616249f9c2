"""TOFU's per-answer statistics and their aggregates, as pure functions, plus the two model
calls every TOFU metric is built from (cached per model in `MetricContext.cache`).

Per (question, answer) pair, teacher-forced (`answer_stats`):
- avg_loss: mean NLL of the answer tokens given the question; TOFU's "probability" is
  exp(−avg_loss), the length-normalised answer probability P(a|q)^(1/|a|);
- hits: whether each answer token is the model's argmax given everything before it.

Aggregates (Maini et al. 2024 §2.2 and open-unlearning src/evals/metrics/):
- truth ratio R = P̄(perturbed)/P(paraphrased) with P̄ the geometric mean of the perturbed
  answers' normalised probabilities (open-unlearning averages their avg_loss, then
  exponentiates): R = exp(avg_loss(para) − mean_j avg_loss(pert_j));
- forget set: mean min(R, 1/R) (1: true and false answers equally likely);
  retain / real authors / world facts: mean max(0, 1 − R) (1: the true answer is far likelier);
- probability with options (real authors, world facts): P(a)/(P(a) + Σ_j P(pert_j));
- forget quality: the p-value of a two-sample Kolmogorov–Smirnov test between the model's and
  the retain model's forget-set truth ratios;
- model utility: the harmonic mean of the nine retain / real-authors / world-facts values;
- exact memorisation (Tirumala et al. 2022): the share of answer tokens that are the argmax;
- extraction strength (Wang et al. 2025, "Towards Effective Evaluations and Comparisons for
  LLM Unlearning Methods", arXiv:2406.09179): 1 − k/n for the smallest prefix length k from
  which every remaining answer token is the argmax, i.e. (length of the trailing run of hits)/n;
  0 when the last token is missed (open-unlearning's loop leaves k = n − 1 there, i.e. 1/n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from eval.tofu.qa import generation_prompt_ids, qa_ids


@dataclass(frozen=True)
class AnswerStats:
    """One answer's teacher-forced statistics under a model."""

    avg_loss: float  # mean NLL per answer token
    hits: np.ndarray  # (n,) bool: each answer token is the argmax

    @property
    def prob(self) -> float:
        """TOFU's probability: P(a|q)^(1/|a|) = exp(−avg_loss)."""
        return float(np.exp(-self.avg_loss))


# ---------------------------------------------------------------------------------------------
# pure aggregates


def truth_ratio(para_loss: float, pert_losses: Sequence[float]) -> float:
    """P̄(perturbed)/P(paraphrased) from avg losses: exp(para − mean(pert))."""
    return float(np.exp(para_loss - float(np.mean(pert_losses))))


def closer_to_one(ratios: Sequence[float]) -> np.ndarray:
    """Per-row min(R, 1/R): TOFU's forget-set truth ratio score."""
    r = np.asarray(ratios, dtype=np.float64)
    return np.minimum(r, 1.0 / np.maximum(r, 1e-300))


def true_better(ratios: Sequence[float]) -> np.ndarray:
    """Per-row max(0, 1 − R): TOFU's truth ratio score where the answer should be known."""
    return np.maximum(0.0, 1.0 - np.asarray(ratios, dtype=np.float64))


def prob_with_options(correct_loss: float, wrong_losses: Sequence[float]) -> float:
    """P(a)/(P(a) + Σ_j P(wrong_j)), each P the normalised probability exp(−avg_loss)."""
    c = float(np.exp(-correct_loss))
    return c / (c + float(np.sum(np.exp(-np.asarray(wrong_losses, dtype=np.float64)))))


def exact_memorization(hits: np.ndarray) -> float:
    """Share of answer tokens that are the model's argmax."""
    return float(np.mean(hits))


def extraction_strength(hits: np.ndarray) -> float:
    """(length of the trailing run of argmax hits) / n: 1 − k/n for the smallest prefix k after
    which greedy teacher-forced predictions reproduce the rest of the answer."""
    h = np.asarray(hits, dtype=bool)
    misses = np.flatnonzero(~h)
    run = len(h) if misses.size == 0 else len(h) - 1 - int(misses[-1])
    return run / len(h)


def forget_quality(model_ratios: Sequence[float], retain_ratios: Sequence[float]):
    """(p-value, statistic) of the two-sample KS test between the two truth-ratio samples."""
    from scipy.stats import ks_2samp

    res = ks_2samp(np.asarray(model_ratios, float), np.asarray(retain_ratios, float))
    return float(res.pvalue), float(res.statistic)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean (0 when any value is 0, as scipy.stats.hmean)."""
    from scipy.stats import hmean

    v = np.asarray(values, dtype=np.float64)
    return 0.0 if np.any(v <= 0) else float(hmean(v))


# ---------------------------------------------------------------------------------------------
# model calls (through lethe.lm), cached per model


def answer_stats(ctx, key: str, answer_col: str, question_col: str = "question") -> list:
    """AnswerStats of every row's answer in `answer_col` of table `key`: one per row, or a list
    per row when the column holds several answers (TOFU's perturbed answers)."""
    cache_key = ("answers", key, question_col, answer_col)
    if cache_key in ctx.cache:
        return ctx.cache[cache_key]
    table, tok, template = ctx.tables[key], ctx.lm.tokenizer, ctx.settings.qa_template
    pairs, shape = [], []
    for q, a in zip(table[question_col], table[answer_col]):
        answers = [a] if isinstance(a, str) else list(a)
        shape.append(None if isinstance(a, str) else len(answers))
        pairs += [qa_ids(tok, q, ans, template) for ans in answers]
    scored = ctx.lm.score_ids([p.prompt + p.answer for p in pairs], ctx.settings.batch_size,
                              argmax=True, desc=f"TOFU {key} {answer_col}")
    flat = []
    for pair, s in zip(pairs, scored):
        n = len(pair.answer)
        flat.append(AnswerStats(float(-np.mean(s.logprobs[-n:])), np.asarray(s.argmax[-n:])))
    out, i = [], 0
    for n in shape:
        out.append(flat[i] if n is None else flat[i:i + n])
        i += 1 if n is None else n
    ctx.cache[cache_key] = out
    return out


def generated_answers(ctx, key: str, question_col: str = "question") -> list[str]:
    """Greedy answers to every question of table `key` (at most tofu_max_new_tokens tokens),
    cut at the plain format's stop strings and stripped."""
    from eval.muse.knowmem import ANSWER_STOPS, cut_answer

    cache_key = ("generated", key, question_col)
    if cache_key in ctx.cache:
        return ctx.cache[cache_key]
    s, tok = ctx.settings, ctx.lm.tokenizer
    plain = s.qa_template == "plain"
    prompts = [generation_prompt_ids(tok, q, s.qa_template) for q in ctx.tables[key][question_col]]
    raw = ctx.lm.generate_ids(prompts, s.tofu_max_new_tokens, s.batch_size,
                              stop=ANSWER_STOPS if plain else None, desc=f"TOFU {key} answers")
    out = [(cut_answer(o) if plain else o).strip() for o in raw]
    ctx.cache[cache_key] = out
    return out
