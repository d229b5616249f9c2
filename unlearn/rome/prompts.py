"""Facts -> tokenised prompts with the position of the subject's last token.

ROME reads the key and writes the value at the *last token of the subject* (Meng et al. 2022,
Sec. 2: causal tracing finds the fact recalled there by mid-layer MLPs). The position is found
from the tokenizer's character offsets: the last token that overlaps the subject's characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from lethe.lm import encode_prompt
from lethe.errors import LetheError

REQUIRED = ("subject", "prompt", "target_true")


@dataclass(frozen=True)
class PromptRow:
    text: str  # the filled prompt
    ids: tuple[int, ...]  # its token ids (as lethe.lm.encode_prompt gives them)
    subject_index: int  # index in `ids` of the subject's last token


def fact_label(fact: dict) -> str:
    return f"fact {fact.get('case_id', '?')} ({fact.get('subject', '?')!r})"


def check_fact(fact: dict) -> None:
    missing = [k for k in REQUIRED if not isinstance(fact.get(k), str)]
    if missing:
        raise LetheError(f"{fact_label(fact)} lacks string field(s) {', '.join(missing)}; facts "
                         f"need subject, prompt ('{{}} was born in') and target_true")
    if not fact["subject"].strip():
        raise LetheError(f"{fact_label(fact)} has an empty subject")
    if fact["prompt"].count("{}") != 1:
        raise LetheError(f"{fact_label(fact)}: prompt {fact['prompt']!r} must contain exactly one "
                         f"'{{}}' where the subject goes, e.g. '{{}} was born in'")


def compose(context: str, prompt: str) -> str:
    """Put a prompt template into a context template ('Some text. {}' + '{} was born in')."""
    return context.replace("{}", prompt, 1)


def make_row(tok, template: str, subject: str, where: str) -> PromptRow:
    """Fill `template` with `subject` and find the subject's last token."""
    if template.count("{}") != 1:
        raise LetheError(f"{where}: template {template!r} must contain exactly one '{{}}' for "
                         f"the subject")
    start = template.index("{}")
    text = template.replace("{}", subject, 1)
    end = start + len(subject)
    ids = encode_prompt(tok, text)
    index = None
    if getattr(tok, "is_fast", False):
        enc = tok(text, return_offsets_mapping=True)
        offsets = enc["offset_mapping"][:len(ids)]
        for i, (s, e) in enumerate(offsets):
            if e > s and s < end and e > start:
                index = i
    else:  # slow tokenizers have no offsets: count the tokens of the text up to the subject end
        prefix = encode_prompt(tok, text[:end])
        if prefix and list(ids[:len(prefix) - 1]) == list(prefix[:-1]):
            index = len(prefix) - 1
    if index is None:
        raise LetheError(f"{where}: cannot locate subject {subject!r} in the tokenised prompt "
                         f"{text!r}; check that the subject is spelled as in the text")
    return PromptRow(text, tuple(ids), index)
