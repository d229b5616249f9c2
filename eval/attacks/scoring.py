"""Teacher-forced answer scoring shared by the extraction attacks and the editing metrics.

A *fact query* is a prompt (already filled with its subject) and an answer string that should
follow it. Token ids come from `lethe.lm.encode_pair`, so the prompt/answer boundary is the
same in every metric, attack and edit objective that uses it; the forward passes are
`lethe.lm.LM.score_ids` (right-padded batches, sorted by length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from lethe.errors import LetheError
from lethe.lm import LM, encode_pair


def fill(template: str, subject: str, where: str = "prompt") -> str:
    """`template` with its one `{}` replaced by `subject` (no str.format: other braces stay)."""
    if template.count("{}") != 1:
        raise LetheError(f"{where} {template!r} must contain exactly one '{{}}' where the subject "
                         f"goes (it has {template.count('{}')}); write e.g. '{{}} was born in'")
    return template.replace("{}", subject, 1)


@dataclass(frozen=True)
class AnswerScore:
    """How a model scores one answer after one prompt (teacher forcing)."""

    logprob: float  # log p(answer | prompt) = sum of the answer tokens' log-probabilities
    n_tokens: int
    greedy: bool  # every answer token is the argmax at its position = greedy decoding yields it
    first_token: int  # the answer's first token id (what the white-box attacks look for)

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


def score_answers(model, tok, prompts: Sequence[str], answers: Sequence[str], *,
                  batch_size: int = 16) -> list[AnswerScore]:
    """Teacher-forced log-probability and greedy match of each answer after its prompt."""
    if len(prompts) != len(answers):
        raise ValueError("prompts and answers differ in length")
    pairs = [encode_pair(tok, p, a) for p, a in zip(prompts, answers)]
    lm = LM(model, tok, progress=False)
    scores = lm.score_ids([p + a for p, a in pairs], batch_size, argmax=True)
    out = []
    for (p, a), s in zip(pairs, scores):
        # logprobs[t - 1] scores token t: the answer's tokens are t = len(p) .. len(p)+len(a)-1
        span = slice(len(p) - 1, len(p) + len(a) - 1)
        out.append(AnswerScore(float(s.logprobs[span].sum()), len(a), bool(s.argmax[span].all()),
                               a[0]))
    return out
