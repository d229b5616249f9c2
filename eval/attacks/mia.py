"""Membership-inference scores of a text under a model, and their AUC.

Sign convention (one for every score, so their AUCs read alike): a score is HIGHER when the
model finds the text MORE SURPRISING, i.e. more like a non-member. AUCs are computed with
members labelled 1 (`sklearn.metrics.roc_auc_score`), so a model that memorised its members
gives AUC ≈ 0, a model that never saw either group AUC ≈ 0.5. This is the convention behind
MUSE's PrivLeak (its AUC of forget vs holdout under Min-40% is ≈ 0 for the target model).

Scores (logprobs = log p(x_t | x_<t) for t ≥ 1, see `lethe.lm.LM.token_scores`):
- `loss`       mean negative log-likelihood, −mean(logprobs) (Yeom et al. 2018).
- `zlib`       loss / (bytes of zlib-compressed UTF-8 text) (Carlini et al. 2021, "zlib ratio").
- `lowercase`  loss(text) / loss(text.lower()) (Carlini et al. 2021, "lowercase ratio").
- `min_k`      Min-K% Prob (Shi et al. 2024): −mean of the ⌊k·n⌋ lowest token log-probs
               (at least one token); MUSE's PrivLeak uses k = 0.4.
- `min_k_pp`   Min-K%++ (Zhang et al. 2024): per token z_t = (log p(x_t|x_<t) − μ_t) / σ_t,
               μ_t and σ_t the mean and std of log p(z|x_<t) over z ~ p(·|x_<t); the score
               is −mean of the ⌊k·n⌋ lowest z_t (negated to follow the convention above).
- `ref`        reference-model likelihood ratio: loss(text) − loss_ref(text), the per-token log
               of p_ref(x)/p(x) (Carlini et al. 2021 compare against a reference model;
               Mireshghallah et al. 2022 and open-unlearning's ReferenceAttack use this
               difference). Needs a reference model (`score_texts(reference=LM)`), e.g. a base
               model trained on neither group; computed only when one is given.
- `gradnorm`   GradNorm: the mean over parameter tensors W of ‖∇_W loss(text)‖_p (p = 2 by
               default), one backward pass per text (open-unlearning's GradNormAttack, after
               Wang et al. 2024, arXiv:2402.17012: a text the model was trained on sits near
               a minimum, so its gradient is small). Costly: computed only when named.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from lethe.lm import TokenScores

SIGMA_FLOOR = 1e-6  # σ_t of a (near-)deterministic next-token distribution; avoids 0/0


# ---------------------------------------------------------------------------------------------
# pure per-text scores


def lowest_k(values: np.ndarray, k: float) -> np.ndarray:
    """The ⌊k·n⌋ smallest values (at least one, so short texts still get a score)."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no token log-probs (a text needs at least two tokens)")
    count = max(1, int(math.floor(values.size * k)))
    return np.sort(values)[:count]


def loss_score(logprobs: np.ndarray) -> float:
    """Mean negative log-likelihood of the predicted tokens."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.size == 0:
        raise ValueError("no token log-probs (a text needs at least two tokens)")
    return float(-lp.mean())


def min_k_score(logprobs: np.ndarray, k: float = 0.4) -> float:
    """Min-K% Prob: the negated mean of the lowest k fraction of token log-probs."""
    return float(-lowest_k(logprobs, k).mean())


def min_k_plus_plus_score(logprobs: np.ndarray, mean: np.ndarray, std: np.ndarray,
                          k: float = 0.4) -> float:
    """Min-K%++: negated mean of the lowest k fraction of (log p − μ) / σ."""
    lp, mu, sd = (np.asarray(a, dtype=np.float64) for a in (logprobs, mean, std))
    z = (lp - mu) / np.maximum(sd, SIGMA_FLOOR)  # (n-1,)
    return float(-lowest_k(z, k).mean())


def zlib_entropy(text: str) -> int:
    """Bytes of the zlib-compressed UTF-8 text (default compression level)."""
    return len(zlib.compress(text.encode("utf-8")))


def zlib_score(logprobs: np.ndarray, text: str) -> float:
    """Loss divided by the zlib entropy of the text."""
    return loss_score(logprobs) / zlib_entropy(text)


def lowercase_score(logprobs: np.ndarray, lower_logprobs: np.ndarray) -> float:
    """Loss of the text divided by the loss of its lowercased version."""
    lower = loss_score(lower_logprobs)
    return loss_score(logprobs) / lower if lower > 0 else float("inf")


def mia_auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC with members labelled 1 and the score as is (higher = more non-member-like)."""
    from sklearn.metrics import roc_auc_score

    m = np.asarray(member_scores, dtype=np.float64)
    n = np.asarray(nonmember_scores, dtype=np.float64)
    labels = np.r_[np.ones(len(m)), np.zeros(len(n))]
    return float(roc_auc_score(labels, np.r_[m, n]))


def auc_vectorized(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> np.ndarray:
    """The same AUC for stacked resamples: inputs (..., n_m) and (..., n_n) → (...,).

    AUC = U / (n_m · n_n) with U the Mann-Whitney statistic of the members (ties count ½):
    U = sum of the members' mid-ranks in the pooled sample − n_m(n_m + 1)/2. That is exactly
    what `roc_auc_score` computes; used inside the bootstrap, where calling scikit-learn 10^4
    times would dominate the run time.
    """
    from scipy.stats import rankdata

    m = np.asarray(member_scores, dtype=np.float64)
    n = np.asarray(nonmember_scores, dtype=np.float64)
    n_m, n_n = m.shape[-1], n.shape[-1]
    lead = np.broadcast_shapes(m.shape[:-1], n.shape[:-1])  # resample dims, e.g. (B,)
    pooled = np.concatenate([np.broadcast_to(m, lead + (n_m,)),
                             np.broadcast_to(n, lead + (n_n,))], axis=-1)  # (..., n_m + n_n)
    ranks = rankdata(pooled, axis=-1)  # mid-ranks: ties share the average rank
    u = ranks[..., :n_m].sum(axis=-1) - n_m * (n_m + 1) / 2
    return u / (n_m * n_n)


# ---------------------------------------------------------------------------------------------
# registry: name -> how to score one text


@dataclass(frozen=True)
class TextRecord:
    """What a MIA score may look at for one text."""

    text: str
    scores: TokenScores  # of the text itself, with moments
    lower: TokenScores | None = None  # of text.lower(), for the lowercase ratio
    ref: TokenScores | None = None  # of the text under the reference model (`ref`)
    grad_norm: float | None = None  # GradNorm of the text (`gradnorm`)


@dataclass(frozen=True)
class MiaScore:
    name: str  # registry key, also the key in results.json
    label: Callable[[float], str]  # display name given k, e.g. "Min-40%"
    fn: Callable[[TextRecord, float], float]  # (record, k) -> score
    needs_lowercase: bool = False
    # What beyond the model's token scores it needs: None, "reference" (a reference model's
    # scores; computed by default when one is given) or "gradients" (a backward pass per text;
    # computed only when named)
    needs: str | None = None


MIA_SCORES: dict[str, MiaScore] = {}


def register_mia(name: str, label: Callable[[float], str] | str, *,
                 needs_lowercase: bool = False, needs: str | None = None):
    def deco(fn):
        MIA_SCORES[name] = MiaScore(name, label if callable(label) else (lambda k, s=label: s),
                                    fn, needs_lowercase, needs)
        return fn
    return deco


def default_mia_names(reference: bool) -> list[str]:
    """The scores computed when none are named: all but GradNorm, `ref` only with a reference."""
    return [n for n, m in MIA_SCORES.items()
            if m.needs is None or (m.needs == "reference" and reference)]


@register_mia("loss", "Loss")
def _loss(rec: TextRecord, k: float) -> float:
    return loss_score(rec.scores.logprobs)


@register_mia("zlib", "Zlib ratio")
def _zlib(rec: TextRecord, k: float) -> float:
    return zlib_score(rec.scores.logprobs, rec.text)


@register_mia("lowercase", "Lowercase ratio", needs_lowercase=True)
def _lowercase(rec: TextRecord, k: float) -> float:
    return lowercase_score(rec.scores.logprobs, rec.lower.logprobs)


@register_mia("min_k", lambda k: f"Min-{round(k * 100):g}%")
def _min_k(rec: TextRecord, k: float) -> float:
    return min_k_score(rec.scores.logprobs, k)


@register_mia("min_k_pp", lambda k: f"Min-{round(k * 100):g}%++")
def _min_k_pp(rec: TextRecord, k: float) -> float:
    return min_k_plus_plus_score(rec.scores.logprobs, rec.scores.mean, rec.scores.std, k)


@register_mia("ref", "Reference", needs="reference")
def _reference(rec: TextRecord, k: float) -> float:
    return reference_score(rec.scores.logprobs, rec.ref.logprobs)


@register_mia("gradnorm", "GradNorm", needs="gradients")
def _gradnorm(rec: TextRecord, k: float) -> float:
    return float(rec.grad_norm)


def reference_score(logprobs: np.ndarray, ref_logprobs: np.ndarray) -> float:
    """loss(text) − loss_ref(text): higher when the model finds the text more surprising than
    the reference does (a non-member)."""
    return loss_score(logprobs) - loss_score(ref_logprobs)



def score_texts(lm, texts: Sequence[str], *, k: float = 0.4, batch_size: int = 8,
                names: Sequence[str] | None = None, desc: str = "MIA", reference=None,
                grad_p: float = 2.0) -> dict[str, np.ndarray]:
    """MIA scores of each text: {name: (len(texts),)}, for `names` or `default_mia_names`.

    `reference`: a `lethe.lm.LM` whose token scores the `ref` score compares with."""
    names = list(names or default_mia_names(reference is not None))
    if "ref" in names and reference is None:
        from lethe.errors import LetheError

        raise LetheError("the `ref` MIA score needs a reference model: pass --reference MODEL "
                         "(e.g. the base model before fine-tuning) or leave ref out of --mia")
    texts = list(texts)
    scores = lm.token_scores(texts, batch_size, moments=True, desc=desc)
    lower = ref = norms = None
    if any(MIA_SCORES[n].needs_lowercase for n in names):
        lower = lm.token_scores([t.lower() for t in texts], batch_size, moments=False,
                                desc=f"{desc} (lowercase)")
    if "ref" in names:
        ref = reference.token_scores(texts, batch_size, moments=False, desc=f"{desc} (reference)")
    if "gradnorm" in names:
        norms = lm.grad_norms(texts, p=grad_p, desc=f"{desc} (GradNorm)")
    records = [TextRecord(t, s, lower[i] if lower else None, ref[i] if ref else None,
                          norms[i] if norms else None)
               for i, (t, s) in enumerate(zip(texts, scores))]
    return {n: np.array([MIA_SCORES[n].fn(r, k) for r in records], dtype=np.float64)
            for n in names}
