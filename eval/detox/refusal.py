"""A simple refusal / apology detector for rewrites.

Small instruction-tuned models asked to rewrite an insult often answer as an assistant instead
("I'm sorry, but I can't help with that.", "I'm not sure what you're trying to say."). Such
an output can score well on STA and fluency while rewriting nothing, so `detox eval` reports
its share (`refusal`) beside the joint scores.

A rewrite counts as a refusal when it matches one of the patterns below and its source does
not (a source that itself says "I'm sorry" may keep it in its rewrite). Patterns are matched
case-insensitively on the rewrite with curly apostrophes straightened. The list is short and
literal on purpose: it is a detector of assistant boilerplate, not of politeness.
"""

from __future__ import annotations

import re
from typing import Sequence

REFUSAL_PATTERNS = (
    r"\bi(?: am|'m) sorry\b",
    r"\bsorry,? but\b",
    r"\bi apologi[sz]e\b",
    r"\bmy apologies\b",
    r"\bi (?:can ?not|can't|won't|am unable to|'m unable to|am not able to|'m not able to)"
    r" (?:help|assist|rewrite|provide|fulfil|fulfill|comply|do that|create|generate|respond)",
    r"\bi(?: am|'m) not sure what you(?:'re| are)\b",
    r"\bas an ai\b",
    r"\bi(?: am|'m) (?:just )?an? (?:ai|language model|assistant)\b",
    r"\b(?:this|that|the) (?:message|text|comment|request|content) (?:is|contains|seems)"
    r" (?:offensive|inappropriate|toxic|harmful)",
    r"\bi (?:don't|do not) (?:feel comfortable|think it's appropriate)\b",
    r"\bplease (?:refrain|be respectful|keep (?:it|the conversation) (?:civil|respectful))\b",
    r"\blet's keep (?:it|the conversation|things) (?:civil|respectful|positive)\b",
)
_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in REFUSAL_PATTERNS)


def _norm(text: str) -> str:
    return str(text).replace("\u2019", "'").replace("\u2018", "'")


def refusal_markers(text: str) -> set[int]:
    """Indices of the patterns `text` matches."""
    t = _norm(text)
    return {i for i, p in enumerate(_PATTERNS) if p.search(t)}


def is_refusal(rewrite: str, source: str | None = None) -> bool:
    """True when `rewrite` matches a refusal/apology pattern that `source` does not."""
    found = refusal_markers(rewrite)
    if found and source:
        found -= refusal_markers(source)
    return bool(found)


def refusals(rewrites: Sequence[str], sources: Sequence[str] | None = None) -> list[float]:
    """1.0 per refusal, else 0.0 (the per-example column of the `refusal` metric)."""
    sources = sources if sources is not None else [None] * len(rewrites)
    return [float(is_refusal(r, s)) for r, s in zip(rewrites, sources)]
