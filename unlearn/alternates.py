"""Forget examples paired with the responses a preference method prefers (DPO, IdkDPO, AltPO).

A preference method compares, for the same prompt, the forget response (dispreferred) with an
alternate response (preferred). Where the alternates come from is the method's `alternate`
setting:
- `idk`: an "I don't know" answer drawn (seeded) from the set bundled with Lethe
  (`unlearn/idk.jsonl`, written for Lethe; TOFU and open-unlearning use a set of the same kind);
- any other value: a column of the forget table holding one alternate (a string) or several (a
  list; AltPO's plausible alternate answers, Mekala et al. 2024, which the offline TOFU-layout
  world writes as `alternate`). With `n_alternates` > 1 each forget example appears once per
  alternate (AltPO trains on k alternates per question).

QA data (`SplitRef.prompt_field`): forget and alternate share the question as prompt and differ
in the answer. Raw text has no prompt: the "prompt" is the BOS token, so the alternate is a whole
text (each chunk of a forget document gets its own alternate).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

from lethe.errors import LetheError
from unlearn.data import qa_example, text_chunks

IDK = "idk"  # the `alternate` value that selects the bundled "I don't know" answers
IDK_FILE = Path(__file__).with_name("idk.jsonl")


@lru_cache(maxsize=1)
def idk_answers() -> tuple[str, ...]:
    """The bundled "I don't know" answers, in file order."""
    lines = IDK_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line)["text"] for line in lines if line.strip())


def alternate_columns(cfg) -> tuple[str, ...]:
    """The forget-table column a method's alternates come from (empty for `idk`)."""
    source = getattr(cfg, "alternate", IDK)
    return () if source == IDK else (source,)


def _choices(row: dict, cfg, rng: random.Random) -> list[str]:
    """The alternate answers of one forget row (at most `n_alternates`)."""
    n = max(1, int(getattr(cfg, "n_alternates", 1)))
    source = getattr(cfg, "alternate", IDK)
    if source == IDK:
        return [rng.choice(idk_answers()) for _ in range(n)]
    value = row.get(source)
    values = [value] if isinstance(value, str) else list(value or [])
    values = [v for v in values if isinstance(v, str) and v.strip()]
    if not values:
        raise LetheError(f"method {cfg.name}: a forget row has no alternate in column "
                         f"{source!r} (question: {str(row.get('_prompt', ''))[:60]!r}); every "
                         f"row needs one, or set method.alternate: idk")
    return values[:n]


def paired_examples(tokenizer, rows: list[dict], field: str, prompt_field: str | None, cfg,
                    max_length: int, *, seed: int = 0,
                    template: str = "plain") -> tuple[list[dict], list[dict]]:
    """(forget examples, alternate examples), aligned: alternate i answers forget i's prompt.

    `rows`: the forget table's rows (`field`, `prompt_field` and the alternate column)."""
    rng = random.Random(f"lethe-alternates:{seed}")
    forget, alternate = [], []
    for row in rows:
        if prompt_field is not None:
            question = row[prompt_field]
            ex = qa_example(tokenizer, question, row[field], max_length, template)
            for alt in _choices({**row, "_prompt": question}, cfg, rng):
                forget.append(ex)
                alternate.append(qa_example(tokenizer, question, alt, max_length, template))
            continue
        for chunk in text_chunks(tokenizer, row[field], max_length):
            for alt in _choices(row, cfg, rng):
                alt_ids = text_chunks(tokenizer, alt, max_length)
                if alt_ids:
                    forget.append({"input_ids": chunk})
                    alternate.append({"input_ids": alt_ids[0]})
    return forget, alternate
