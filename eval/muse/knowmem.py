"""C2 / C4 — KnowMem: question answering on the forget set (C2) and the retain set (C4,
utility), MUSE §3.1.

Prompt: `n_icl` (10) in-context pairs from the matching `*_icl` split, each formatted
"Question: {q}\\nAnswer: {a}\\n\\n", followed by "Question: {q}\\nAnswer: ". Greedy-decode
`max_new_tokens` (32) tokens, cut the output at the first "\\n\\n", "\\nQuestion" or
"Question:", and score ROUGE-L F1 against the answer. KnowMem = mean F1 × 100.
"""

from __future__ import annotations

import logging
from typing import Sequence

from eval.muse.registry import MetricContext, Split, register_metric
from eval.rouge import rouge_l_f1
from eval.stats import CONFIDENCE, N_RESAMPLES, Score, mean_score

log = logging.getLogger(__name__)

ANSWER_STOPS = ("\n\n", "\nQuestion", "Question:")


def icl_prefix(questions: Sequence[str], answers: Sequence[str]) -> str:
    """The in-context block: one "Question: …\\nAnswer: …\\n\\n" per pair."""
    return "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in zip(questions, answers))


def qa_prompt(prefix: str, question: str) -> str:
    return f"{prefix}Question: {question}\nAnswer: "


def cut_answer(output: str, stops: Sequence[str] = ANSWER_STOPS) -> str:
    """`output` up to the earliest occurrence of any stop string."""
    cut = min((i for i in (output.find(s) for s in stops) if i >= 0), default=len(output))
    return output[:cut]


def knowmem(lm, questions: Sequence[str], answers: Sequence[str],
            icl_questions: Sequence[str], icl_answers: Sequence[str], *, n_icl: int = 10,
            max_new_tokens: int = 32, batch_size: int = 8, confidence: float = CONFIDENCE,
            n_resamples: int = N_RESAMPLES, seed: int = 0, desc: str = "KnowMem") -> Score:
    """Mean ROUGE-L F1 × 100 of cut greedy answers to few-shot QA prompts."""
    questions, answers = list(questions), list(answers)
    icl_q, icl_a = list(icl_questions)[:n_icl], list(icl_answers)[:n_icl]
    if len(icl_q) < n_icl:
        log.warning("%s: the ICL split has %d pairs, fewer than the %d asked for; using them all",
                    desc, len(icl_q), n_icl)
    prefix = icl_prefix(icl_q, icl_a)
    prompts = [qa_prompt(prefix, q) for q in questions]
    # stopping at the cut strings changes nothing after `cut_answer`, it only saves tokens
    raw = lm.generate(prompts, max_new_tokens, batch_size, stop=ANSWER_STOPS, desc=desc)
    outputs = [cut_answer(o) for o in raw]
    f1 = [rouge_l_f1(a, o) for a, o in zip(answers, outputs)]
    return mean_score(f1, scale=100.0, confidence=confidence, n_resamples=n_resamples,
                      seed=seed, meta={"max_new_tokens": max_new_tokens, "n_icl": len(icl_q),
                                       "outputs": outputs})


def _knowmem_metric(ctx: MetricContext, qa: str, icl: str, desc: str) -> Score:
    s = ctx.settings
    t, shots = ctx.tables[qa], ctx.tables[icl]
    return knowmem(ctx.lm, t["question"], t["answer"], shots["question"], shots["answer"],
                   n_icl=s.n_icl, max_new_tokens=s.knowmem_max_new_tokens,
                   batch_size=s.batch_size, confidence=s.confidence,
                   n_resamples=s.n_resamples, seed=s.seed, desc=desc)


QA = ("question", "answer")


@register_metric("knowmem_f", title="KnowMem_f", criterion="C2 no knowledge memorization",
                 direction="down", splits=(Split("knowmem", "forget_qa", QA),
                                           Split("knowmem", "forget_qa_icl", QA, limited=False)))
def _knowmem_f(ctx: MetricContext) -> Score:
    return _knowmem_metric(ctx, "knowmem/forget_qa", "knowmem/forget_qa_icl", "KnowMem_f")


@register_metric("knowmem_r", title="KnowMem_r", criterion="C4 utility preservation",
                 direction="up", splits=(Split("knowmem", "retain_qa", QA),
                                         Split("knowmem", "retain_qa_icl", QA, limited=False)))
def _knowmem_r(ctx: MetricContext) -> Score:
    return _knowmem_metric(ctx, "knowmem/retain_qa", "knowmem/retain_qa_icl", "KnowMem_r")
