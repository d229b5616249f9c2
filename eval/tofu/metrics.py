"""TOFU's metrics (Maini et al. 2024; open-unlearning's configs/eval/tofu*.yaml), registered
beside MUSE's. Every value is in [0, 1] as TOFU reports it; `forget_quality` is a p-value.

Tables (TOFU's hub layout, config/split; the offline world writes the same,
`unlearn world --format tofu`): `{forget}_perturbed/train` (forget01/05/10), `retain_perturbed`,
`real_authors_perturbed`, `world_facts_perturbed`, each with question, answer and
perturbed_answer (a list of wrong answers); the forget and retain tables also have
paraphrased_answer. Formulas: eval/tofu/scores.py.
"""

from __future__ import annotations

import numpy as np

from eval.muse.registry import MetricContext, Split, register_benchmark, register_metric
from eval.rouge import rouge_l_recall_stemmed
from eval.stats import Score, mean_score
from eval.tofu import scores as S

PERTURBED = ("question", "answer", "paraphrased_answer", "perturbed_answer")
WITH_OPTIONS = ("question", "answer", "perturbed_answer")
LISTS = ("perturbed_answer",)  # several wrong answers per row
FORGET = Split("{forget}_perturbed", "train", PERTURBED, lists=LISTS)
RETAIN = Split("retain_perturbed", "train", PERTURBED, lists=LISTS)
REAL_AUTHORS = Split("real_authors_perturbed", "train", WITH_OPTIONS, lists=LISTS)
WORLD_FACTS = Split("world_facts_perturbed", "train", WITH_OPTIONS, lists=LISTS)
SETS = {"r": RETAIN, "ra": REAL_AUTHORS, "wf": WORLD_FACTS}
SET_NAMES = {"f": "forget", "r": "retain", "ra": "real authors", "wf": "world facts"}
UTILITY = ("prob_r", "rouge_r", "truth_ratio_r", "prob_ra", "rouge_ra", "truth_ratio_ra",
           "prob_wf", "rouge_wf", "truth_ratio_wf")  # model utility's nine components
register_benchmark("tofu", ("forget_quality", "model_utility", "truth_ratio_f", "prob_f",
                            "rouge_f", "extraction_strength", "exact_mem"))


def _mean(ctx: MetricContext, values, **meta) -> Score:
    s = ctx.settings
    return mean_score(values, confidence=s.confidence, n_resamples=s.n_resamples, seed=s.seed,
                      meta=meta)


def forget_truth_ratios(ctx: MetricContext) -> list[float]:
    """Per forget row: R = P̄(perturbed)/P(paraphrased)."""
    para = S.answer_stats(ctx, FORGET.key, "paraphrased_answer")
    pert = S.answer_stats(ctx, FORGET.key, "perturbed_answer")
    return [S.truth_ratio(p.avg_loss, [x.avg_loss for x in xs]) for p, xs in zip(para, pert)]


def probability(ctx: MetricContext, split: Split) -> Score:
    """Mean normalised probability of the answer; real authors and world facts normalise it
    against their perturbed answers (open-unlearning's probability_w_options)."""
    correct = S.answer_stats(ctx, split.key, "answer")
    if split.columns == PERTURBED:
        return _mean(ctx, [c.prob for c in correct])
    wrong = S.answer_stats(ctx, split.key, "perturbed_answer")
    return _mean(ctx, [S.prob_with_options(c.avg_loss, [w.avg_loss for w in ws])
                       for c, ws in zip(correct, wrong)], normalised="against perturbed answers")


def rouge(ctx: MetricContext, split: Split) -> Score:
    """Mean ROUGE-L recall (stemmed) of greedy answers against the answer."""
    outputs = S.generated_answers(ctx, split.key)
    refs = ctx.tables[split.key]["answer"]
    return _mean(ctx, [rouge_l_recall_stemmed(r, o) for r, o in zip(refs, outputs)],
                 outputs=outputs, max_new_tokens=ctx.settings.tofu_max_new_tokens)


def truth_ratio_known(ctx: MetricContext, split: Split) -> Score:
    """Mean max(0, 1 − R) where the answer should stay known (R against the paraphrased answer
    on retain, against the answer itself on real authors / world facts, as open-unlearning)."""
    col = "paraphrased_answer" if split.columns == PERTURBED else "answer"
    true = S.answer_stats(ctx, split.key, col)
    pert = S.answer_stats(ctx, split.key, "perturbed_answer")
    ratios = [S.truth_ratio(t.avg_loss, [x.avg_loss for x in xs]) for t, xs in zip(true, pert)]
    return _mean(ctx, S.true_better(ratios), truth_ratios=ratios)


def _register_set(tag: str, split: Split) -> None:
    name = SET_NAMES[tag]
    common = dict(direction="up", splits=(split,), benchmark="tofu", fmt=".3f")
    register_metric(f"prob_{tag}", title=f"Prob_{tag}", criterion=f"TOFU utility: answer "
                    f"probability on {name}", **common)(lambda ctx: probability(ctx, split))
    register_metric(f"rouge_{tag}", title=f"ROUGE_{tag}", criterion=f"TOFU utility: ROUGE-L "
                    f"recall on {name}", **common)(lambda ctx: rouge(ctx, split))
    register_metric(f"truth_ratio_{tag}", title=f"TR_{tag}", criterion=f"TOFU utility: truth "
                    f"ratio on {name}", **common)(lambda ctx: truth_ratio_known(ctx, split))


for _tag, _split in SETS.items():
    _register_set(_tag, _split)


@register_metric("model_utility", title="MU", criterion="TOFU model utility (harmonic mean of "
                 "9)", direction="up", splits=(RETAIN, REAL_AUTHORS, WORLD_FACTS),
                 benchmark="tofu", fmt=".3f")
def _model_utility(ctx: MetricContext) -> Score:
    from eval.muse.registry import metrics

    parts = {n: metrics()[n].compute(ctx).value for n in UTILITY}  # shared cache: no rework
    return Score(value=S.harmonic_mean(list(parts.values())), meta={"components": parts})


@register_metric("prob_f", title="Prob_f", criterion="TOFU forget: answer probability",
                 direction="down", splits=(FORGET,), benchmark="tofu", fmt=".3f")
def _prob_f(ctx: MetricContext) -> Score:
    return probability(ctx, FORGET)


@register_metric("rouge_f", title="ROUGE_f", criterion="TOFU forget: ROUGE-L recall",
                 direction="down", splits=(FORGET,), benchmark="tofu", fmt=".3f")
def _rouge_f(ctx: MetricContext) -> Score:
    return rouge(ctx, FORGET)


@register_metric("truth_ratio_f", title="TR_f", criterion="TOFU forget: truth ratio "
                 "(min(R, 1/R))", direction="up", splits=(FORGET,), benchmark="tofu", fmt=".3f")
def _truth_ratio_f(ctx: MetricContext) -> Score:
    ratios = forget_truth_ratios(ctx)
    return _mean(ctx, S.closer_to_one(ratios), truth_ratios=ratios)


@register_metric("forget_quality", title="FQ", criterion="TOFU forget quality (KS p-value vs "
                 "the retain model)", direction="up", splits=(FORGET,), benchmark="tofu",
                 fmt=".3g", log_axis=True, needs_retrain_model=True)
def _forget_quality(ctx: MetricContext) -> Score:
    ratios = forget_truth_ratios(ctx)
    if ctx.retrain == "self":  # the retain model itself: its own distribution, p = 1
        reference = ratios
    else:
        reference = ctx.retrain["forget_quality"].meta["truth_ratios"]
    p, stat = S.forget_quality(ratios, reference)
    return Score(value=p, per_example=[], meta={
        "test": "two-sample Kolmogorov-Smirnov on forget-set truth ratios (scipy ks_2samp)",
        "statistic": stat, "n": len(ratios), "n_retrain": len(reference),
        "truth_ratios": ratios, "log10_p": float(np.log10(max(p, 1e-300)))})


def _hits(ctx: MetricContext):
    return [a.hits for a in S.answer_stats(ctx, FORGET.key, "answer")]


@register_metric("extraction_strength", title="ES_f", criterion="TOFU forget: extraction "
                 "strength", direction="down", splits=(FORGET,), benchmark="tofu", fmt=".3f")
def _extraction_strength(ctx: MetricContext) -> Score:
    return _mean(ctx, [S.extraction_strength(h) for h in _hits(ctx)])


@register_metric("exact_mem", title="EM_f", criterion="TOFU forget: exact memorisation",
                 direction="down", splits=(FORGET,), benchmark="tofu", fmt=".3f")
def _exact_mem(ctx: MetricContext) -> Score:
    return _mean(ctx, [S.exact_memorization(h) for h in _hits(ctx)])
