"""Question-answer pairs as a model reads them: the prompt format and the answer's tokens.

Two formats (`SuiteSettings.qa_template`):
- `plain`: "Question: {q}\\nAnswer: {a}", the format the offline world's question sheets and the
  MUSE KnowMem prompt use (a base model or a model trained on the world reads it);
- `chat`: the tokenizer's chat template, one user turn (the question) and one assistant turn
  (the answer), as open-unlearning formats TOFU for instruction-tuned models.

`qa_ids` splits a pair into prompt ids and answer ids once, for scoring (TOFU probability, truth
ratio, exact memorisation, extraction strength) and for training on QA data (unlearn.data). The
answer's leading whitespace-only tokens (a tokenizer that makes every space its own token starts
" Vessmark" with a lone space, predicted with p ~ 1 after any prompt) belong to the prompt: they
carry formatting, not the answer (lethe.lm.leading_space_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from lethe.errors import LetheError
from lethe.lm import encode_pair, encode_prompt, leading_space_tokens

TEMPLATES = ("plain", "chat")


def plain_prompt(question: str) -> str:
    """The plain prompt a model continues with its answer (trailing space, as KnowMem's)."""
    return f"Question: {question}\nAnswer: "


@dataclass(frozen=True)
class QAIds:
    """One question-answer pair tokenised: `prompt + answer` is what the model reads."""

    prompt: list  # token ids up to the first answer token (whitespace-only tokens included)
    answer: list  # the answer's token ids (what is scored)


def _chat_ids(tok, question: str, answer: str) -> tuple[list[int], list[int]]:
    if not getattr(tok, "chat_template", None):
        raise LetheError("qa template 'chat' needs a tokenizer with a chat template; this one "
                         "has none (use the plain template)")
    turns = [{"role": "user", "content": question}]
    prompt = list(tok.apply_chat_template(turns, tokenize=True, add_generation_prompt=True))
    full = list(tok.apply_chat_template(turns + [{"role": "assistant", "content": answer}],
                                        tokenize=True))
    if full[:len(prompt)] != prompt or len(full) <= len(prompt):
        raise LetheError("the tokenizer's chat template does not extend the prompt with the "
                         "answer; use the plain template")
    return prompt, full[len(prompt):]


def qa_ids(tok, question: str, answer: str, template: str = "plain") -> QAIds:
    """Prompt and answer ids of one pair (the answer's lone leading spaces move to the prompt)."""
    if template == "chat":
        prompt, ans = _chat_ids(tok, question, answer)
    elif template == "plain":
        prompt, ans = encode_pair(tok, plain_prompt(question).rstrip(), answer)
    else:
        raise LetheError(f"unknown qa template {template!r}; choose one of {', '.join(TEMPLATES)}")
    skip = leading_space_tokens(tok, ans)
    return QAIds(list(prompt) + list(ans[:skip]), list(ans[skip:]))


def generation_prompt_ids(tok, question: str, template: str = "plain") -> list[int]:
    """The ids a model continues to answer `question` (ROUGE of generated answers)."""
    if template == "chat":
        return _chat_ids(tok, question, "x")[0]
    return encode_prompt(tok, plain_prompt(question))
