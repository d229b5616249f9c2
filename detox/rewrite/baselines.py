"""The trivial baselines every rewriter must beat: `copy` (the input unchanged) and `delete`
(the input without the words a toxicity scorer flags).

`delete` is the "delete" baseline of the PAN/CLEF 2024 TextDetox task: it drops every word whose
own toxicity probability (under an STA scorer, alt-profanity-check by default) reaches the
threshold, and keeps everything else as written - the punctuation around a dropped word, the
casing and the spacing of the rest. With a word-list STA scorer it scores J ~0.70 on ParaDetox
(../shared/BENCHMARKS.md), so `detox eval --baselines copy,delete` puts both beside every
system: a rewriter that does not beat them has learned nothing a regex could not do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from detox.rewrite.recipe import rewriter
from detox.rewrite.rewriters import Item, Rewrite
from eval.detox.registry import scorer_field

# a whitespace-delimited token with the punctuation around its word: ("(", "idiot", ")!")
_TOKEN = re.compile(r"(\s*)(\S+)")
_CORE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


@rewriter("copy")
@dataclass(frozen=True)
class CopyConfig:
    """The input, unchanged (the floor of STA, the ceiling of SIM)."""

    name: str = "copy"

    baseline = True  # `detox eval --baselines` may run it (no model, no sampling)

    def build(self, recipe=None, scorers=None):
        return Copy()

    def check(self, pf, recipe, where: str) -> None:
        pf.ok(f"{where}: copy needs nothing")


class Copy:
    def rewrite(self, items: Sequence[Item]) -> list[Rewrite]:
        return [Rewrite(it.text) for it in items]


@rewriter("delete")
@dataclass(frozen=True)
class DeleteConfig:
    """Drop the words an STA scorer flags; keep punctuation, casing and everything else."""

    name: str = "delete"
    # the scorer that judges each word alone: a word goes when its P(toxic) >= the scorer's
    # threshold (profanity = alt-profanity-check; or a classifier, e.g. model: paradetox)
    scorer: Any = scorer_field("sta", "profanity")

    baseline = True

    def build(self, recipe=None, scorers=None):
        from eval.detox.registry import create

        return Delete(create(self.scorer))

    def check(self, pf, recipe, where: str) -> None:
        from detox.rewrite.checks import check_scorer

        check_scorer(pf, self.scorer, f"{where}.scorer")


def split_tokens(text: str) -> list[tuple[str, str, str, str]]:
    """(space before, leading punctuation, word, trailing punctuation) per token of `text`."""
    out = []
    for m in _TOKEN.finditer(text):
        lead, core, trail = _CORE.match(m.group(2)).groups()
        out.append((m.group(1), lead, core, trail))
    return out


def delete_words(text: str, flagged: set[str]) -> str:
    """`text` without the words in `flagged`; a dropped word's punctuation stays (attached to
    the word before it when nothing else is left of the token)."""
    parts: list[str] = []
    for space, lead, core, trail in split_tokens(text):
        if core and core in flagged:
            # "what the fuck!" -> "what the!"; at the very start only an opening bracket or
            # quote survives ("(damn) it" -> "( it" would be worse than "it")
            rest = ((space + lead if lead else "") + trail) if parts else ""
            if rest:
                parts.append(rest)
            continue
        parts.append(space + lead + core + trail if parts else lead + core + trail)
    return "".join(parts).strip()


class Delete:
    """Word-level deletion with one batched scorer call over the distinct words of a window."""

    def __init__(self, scorer):
        self.scorer = scorer

    def rewrite(self, items: Sequence[Item]) -> list[Rewrite]:
        words = sorted({core for it in items for _, _, core, _ in split_tokens(it.text) if core})
        probs = self.scorer.toxic_prob(words) if words else []
        flagged = {w for w, p in zip(words, probs) if p >= self.scorer.threshold}
        return [Rewrite(delete_words(it.text, flagged)) for it in items]
