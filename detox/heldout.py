"""The ParaDetox rows every detox measurement is made on, kept out of everything that learns.

The held-out slice is the **last 500 rows** of the ParaDetox development copy
(`../shared/data/paradetox_dev.tsv`: the first 9,000 data lines of s-nlp/paradetox's
`paradetox.tsv`, 8,993 rows once quoted multi-line cells are parsed; held out = parsed rows
8493-8992, 0-based). Rewriters, classifiers and reward models are compared there
(docs/detox.md, "Held-out slice").

It is excluded *by content*, not by position: `detox/data/paradetox_heldout.txt` lists a short
hash of each held-out toxic sentence (no text is shipped), and every loader that feeds a
learner or a prompt - few-shot demonstration pools, SFT pairs, classifier training rows, RL
prompts - drops any row whose source text hashes into that list. So the slice stays out
whether the data come from the local copy, the hub dataset (one row per pair, other column
names, other order) or a user's reshuffled file, and no recipe setting can put it back.
"""

from __future__ import annotations

import hashlib
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

HELDOUT_ROWS = 500  # the last 500 parsed rows of paradetox_dev.tsv
_SPACE = re.compile(r"\s+")


def heldout_file() -> Path:
    return Path(__file__).resolve().parent / "data" / "paradetox_heldout.txt"


def text_key(text: str) -> str:
    """16 hex digits of SHA-256 of the text, lowercased with whitespace collapsed (so a copy
    that differs only in case or spacing is still recognised)."""
    norm = _SPACE.sub(" ", str(text).strip().lower())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


@lru_cache(maxsize=1)
def heldout_keys() -> frozenset[str]:
    """The hashes of the held-out toxic sentences (comment lines start with #)."""
    lines = heldout_file().read_text(encoding="utf-8").splitlines()
    return frozenset(x.strip() for x in lines if x.strip() and not x.startswith("#"))


def is_heldout(text: str) -> bool:
    return text_key(text) in heldout_keys()


def drop_heldout(rows: Iterable[T], text_of: Callable[[T], str], where: str) -> list[T]:
    """`rows` without those whose source text (`text_of(row)`) is in the held-out slice."""
    rows = list(rows)
    keys = heldout_keys()
    kept = [r for r in rows if text_key(text_of(r)) not in keys]
    if len(kept) < len(rows):
        log.info("%s: %d row(s) of the ParaDetox held-out slice left out (detox/heldout.py)",
                 where, len(rows) - len(kept))
    return kept


def write_heldout_file(texts: Iterable[str], path: Path | None = None) -> Path:
    """Write the hash list for `texts` (used once, to fix the slice; see the module doc)."""
    path = path or heldout_file()
    header = ("# ParaDetox held-out slice (detox/heldout.py): text_key() of the toxic sentence of\n"
              f"# the last {HELDOUT_ROWS} parsed rows of paradetox_dev.tsv (rows 8493-8992).\n")
    path.write_text(header + "".join(f"{text_key(t)}\n" for t in texts), encoding="utf-8")
    return path
