"""C1 — no verbatim memorization: VerbMem on the forget set (MUSE §3.1).

For each (prompt, gt) of `verbmem/forget`: greedy-decode `max_new_tokens` (128) tokens from the
prompt, truncate the ground-truth continuation to its first `max_new_tokens` tokens, and score
ROUGE-L F1 (rouge-score, no stemmer). VerbMem = mean F1 × 100, with a bootstrap interval.

Unlike MUSE's script, the ground truth is cut to 128 *text* tokens (MUSE counts the BOS token
its tokenizer prepends, keeping 127) and cut on the original string (no decode round trip).
"""

from __future__ import annotations

from typing import Sequence

from eval.muse.registry import MetricContext, Split, register_metric
from eval.rouge import rouge_l_f1, rouge_l_recall
from eval.stats import CONFIDENCE, N_RESAMPLES, Score, mean_score


def truncate_to_tokens(text: str, tokenizer, n: int) -> str:
    """The prefix of `text` covered by its first `n` tokens (no special tokens counted)."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= n:
            return text
        return text[:offsets[n - 1][1]]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= n:
        return text
    return tokenizer.decode(ids[:n], skip_special_tokens=True)


def verbmem(lm, prompts: Sequence[str], gts: Sequence[str], *, max_new_tokens: int = 128,
            batch_size: int = 8, confidence: float = CONFIDENCE,
            n_resamples: int = N_RESAMPLES, seed: int = 0) -> Score:
    """Mean ROUGE-L F1 × 100 of greedy continuations of `prompts` against truncated `gts`."""
    prompts, gts = list(prompts), list(gts)
    if len(prompts) != len(gts):
        raise ValueError("prompts and gts differ in length")
    outputs = lm.generate(prompts, max_new_tokens, batch_size, desc="VerbMem")
    refs = [truncate_to_tokens(gt, lm.tokenizer, max_new_tokens) for gt in gts]
    f1 = [rouge_l_f1(r, o) for r, o in zip(refs, outputs)]
    recall = [rouge_l_recall(r, o) for r, o in zip(refs, outputs)]
    return mean_score(f1, scale=100.0, confidence=confidence, n_resamples=n_resamples,
                      seed=seed, meta={"max_new_tokens": max_new_tokens,
                                       "mean_rougeL_recall": 100.0 * sum(recall) / len(recall),
                                       "outputs": outputs})


@register_metric("verbmem_f", title="VerbMem_f", criterion="C1 no verbatim memorization",
                 direction="down", splits=(Split("verbmem", "forget", ("prompt", "gt")),))
def _verbmem_f(ctx: MetricContext) -> Score:
    t = ctx.tables["verbmem/forget"]
    s = ctx.settings
    return verbmem(ctx.lm, t["prompt"], t["gt"], max_new_tokens=s.verbmem_max_new_tokens,
                   batch_size=s.batch_size, confidence=s.confidence,
                   n_resamples=s.n_resamples, seed=s.seed)
