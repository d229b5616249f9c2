"""Teacher-forced answer scoring shared by the extraction attacks and the editing metrics.

A *fact query* is a prompt (already filled with its subject) and an answer string that should
follow it. Everything here works on token ids built by `encode_pair`, so the prompt/answer
boundary is the same in every metric, attack and edit objective that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from lethe.errors import LetheError


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def fill(template: str, subject: str, where: str = "prompt") -> str:
    """`template` with its one `{}` replaced by `subject` (no str.format: other braces stay)."""
    if template.count("{}") != 1:
        raise LetheError(f"{where} {template!r} must contain exactly one '{{}}' where the subject "
                         f"goes (it has {template.count('{}')}); write e.g. '{{}} was born in'")
    return template.replace("{}", subject, 1)


def _strip_trailing_special(ids: list[int], special: set[int]) -> list[int]:
    while ids and ids[-1] in special:
        ids = ids[:-1]
    return ids


def encode_prompt(tok, prompt: str) -> list[int]:
    """Token ids of a prompt as a model reads it before its answer (no trailing EOS)."""
    special = set(getattr(tok, "all_special_ids", []) or [])
    return _strip_trailing_special(list(tok(prompt)["input_ids"]), special)


def encode_pair(tok, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of `prompt` (with the tokenizer's usual special tokens) and of `answer` as
    the continuation of the prompt.

    The answer is separated by one space unless the prompt ends (or the answer starts) with
    whitespace. Tokenising prompt+answer together and splitting at the prompt's length keeps
    the ids a model would see when reading the whole sentence; when the boundary tokens merge
    (the joint ids do not start with the prompt's ids) the answer is tokenised on its own.
    """
    if not answer or not answer.strip():
        raise LetheError(f"empty answer for prompt {prompt!r}; every fact needs a non-empty target")
    sep = "" if (not prompt or prompt[-1].isspace() or answer[0].isspace()) else " "
    special = set(getattr(tok, "all_special_ids", []) or [])
    p_ids = encode_prompt(tok, prompt)
    full = _strip_trailing_special(list(tok(prompt + sep + answer)["input_ids"]), special)
    if len(full) > len(p_ids) and full[:len(p_ids)] == p_ids:
        return p_ids, full[len(p_ids):]
    a_ids = list(tok(sep + answer, add_special_tokens=False)["input_ids"])
    if not a_ids:
        raise LetheError(f"answer {answer!r} tokenises to nothing; check the tokenizer")
    return p_ids, a_ids


def leading_space_tokens(tok, answer_ids: Sequence[int]) -> int:
    """How many leading answer tokens are whitespace only (never the last one).

    A tokenizer that makes every whitespace character its own token (Lethe's prepared models)
    starts the answer " Vessmark" with a lone space, which the model predicts with p ~ 1 after
    any prompt. It carries formatting, not the fact: the white-box attacks and the deletion
    defenses look at the first token after it, read at the position after it. GPT-2-style
    and SentencePiece answers start with " Vess"/"▁Vess": 0 here, nothing changes for them.
    """
    n = 0
    while n < len(answer_ids) - 1 and not tok.decode([answer_ids[n]]).strip():
        n += 1
    return n


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor,
                                                                              torch.Tensor]:
    """Right-padded (B, T) input ids and attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids.to(device), mask.to(device)


def pad_id_of(tok) -> int:
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return int(pad) if pad is not None else 0


@dataclass(frozen=True)
class AnswerScore:
    """How a model scores one answer after one prompt (teacher forcing)."""

    logprob: float  # log p(answer | prompt) = sum of the answer tokens' log-probabilities
    n_tokens: int
    greedy: bool  # every answer token is the argmax at its position = greedy decoding yields it
    first_token: int  # the answer's first token id (what the white-box attacks look for)

    @property
    def prob(self) -> float:
        return float(torch.tensor(self.logprob).exp())


@torch.no_grad()
def score_answers(model, tok, prompts: Sequence[str], answers: Sequence[str], *,
                  batch_size: int = 16) -> list[AnswerScore]:
    """Teacher-forced log-probability and greedy match of each answer after its prompt."""
    if len(prompts) != len(answers):
        raise ValueError("prompts and answers differ in length")
    device = model_device(model)
    out: list[AnswerScore] = []
    pairs = [encode_pair(tok, p, a) for p, a in zip(prompts, answers)]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        ids, mask = pad_right([p + a for p, a in chunk], pad_id_of(tok), device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
        logp = torch.log_softmax(logits, dim=-1)
        for i, (p, a) in enumerate(chunk):
            pos = torch.arange(len(p) - 1, len(p) + len(a) - 1, device=device)  # predict a
            target = torch.tensor(a, device=device)
            token_logp = logp[i, pos].gather(-1, target[:, None]).squeeze(-1)  # (A,)
            greedy = bool((logits[i, pos].argmax(-1) == target).all())
            out.append(AnswerScore(float(token_logp.sum()), len(a), greedy, a[0]))
    return out
