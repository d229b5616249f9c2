"""The offline world in TOFU's layout (`unlearn world OUT --format tofu`).

TOFU (Maini et al. 2024, locuslab/TOFU) asks questions about fictitious authors; its tables are
configs with one `train` split: `full`, `forget10` / `retain90` (forget / retain QA),
`forget10_perturbed` and `retain_perturbed` (plus paraphrased_answer, paraphrased_question and
perturbed_answer: wrong answers of the same shape), `real_authors(_perturbed)` and
`world_facts(_perturbed)` (knowledge the fine-tuning never touches), `holdout10` (never trained;
membership inference). Lethe writes the same tables from the seeded world's question-answer
pairs — the very pairs the world's documents and question sheets teach, in the same wording —
so the models `unlearn prepare` trains on the world (target, and retrain as TOFU's "retain
model") are TOFU's target and retain models, and the whole benchmark runs on a CPU:

| TOFU config | rows from the world |
|---|---|
| forget10 (+ _perturbed) | the forget group's pairs (its documents' and sheets') |
| retain90, retain_perturbed | retain1's pairs (the unlearning retain set) |
| real_authors(_perturbed) | retain2's pairs about people (known, never used to unlearn) |
| world_facts(_perturbed) | retain2's pairs about places and works |
| holdout10 | the holdout group's pairs (never trained) |
| full | forget10 + retain90 + real_authors + world_facts |

The forget group fills TOFU's forget10 slot whatever its share of the world (world.json records
it). Wrong answers (`perturbed_answer`, 5 per forget/retain row, 3 per real-authors/world-facts
row as TOFU's options) are other values of the same attribute (other towns, years, employers,
...), topped up with freshly invented names or years when the world has too few; the
paraphrased answer and the perturbed answers of a row share one carrier sentence ("The answer
is X."), so the truth ratio compares facts, not wording. `forget10` also carries
`alternate`: 5 more wrong-but-plausible answers, disjoint from the perturbed ones, for AltPO.
Same seed and size → byte-identical files, independent of the MUSE files (which are unchanged).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from random import Random

from unlearn.world import (COUNTRY_SUFFIXES, GENERATOR, GENRES, OCCUPATIONS, ORG_PATTERNS,
                           PLACE_SUFFIXES, PRODUCTS, QUESTIONS, SIZES, SURNAME_SUFFIXES,
                           TITLE_NOUNS, TITLE_PATTERNS, VERSION, World, _Namer, write_world)

FORMAT = "tofu"
FORGET, RETAIN, HOLDOUT = "forget10", "retain90", "holdout10"  # TOFU's slots the world fills
N_PERTURBED = 5  # wrong answers per forget / retain row (TOFU: 5)
N_OPTIONS = 3  # wrong answers per real-authors / world-facts row (TOFU: 4 options, 1 right)
N_ALTERNATES = 5  # AltPO's alternates per forget row (the paper's alt5)
CARRIERS = ("The answer is {}.", "That would be {}.", "It is {}, as far as the records go.",
            "As I recall, {}.")  # paraphrases of a bare answer (one per row, for all its answers)
VOCAB = {"person.occupation": OCCUPATIONS, "place.product": PRODUCTS, "work.genre": GENRES}
YEARS = {"person.year": (1650, 1950), "place.founded": (800, 1600), "work.year": (1672, 2020)}


class _Inventor:
    """Fresh values of an attribute: invented names never used in the world, or years."""

    def __init__(self, world: World, rng: Random):
        self.rng = rng
        self.namer = _Namer(rng)
        for rows in world.data["raw"].values():  # every word of the world is taken
            for r in rows:
                self.namer.used.update(w.lower() for w in r["text"].replace("'", " ").split())

    def __call__(self, attr: str) -> str:
        r, n = self.rng, self.namer
        if attr in YEARS:
            return str(r.randint(*YEARS[attr]))
        if attr in ("person.birthplace",):
            return n.word(r.choice((1, 2)), PLACE_SUFFIXES)
        if attr in ("person.mentor", "work.author"):
            return f"{n.word(2, max_len=8)} {n.word(2, SURNAME_SUFFIXES, 0.5)}"
        if attr == "person.employer":
            return r.choice(ORG_PATTERNS).format(x=n.word(2))
        if attr == "person.work":
            return r.choice(TITLE_PATTERNS).format(x=n.word(2, max_len=9),
                                                   n=r.choice(TITLE_NOUNS))
        if attr == "place.country":
            return n.word(2, COUNTRY_SUFFIXES)
        if attr == "place.river":
            return n.word(1, ("a", "e", "in"), p_suffix=0.4)
        raise ValueError(f"no way to invent a value for {attr}")  # the vocabularies suffice


def wrong_answers(world: World, attr: str, answer: str, n: int, rng: Random,
                  invent: _Inventor) -> list[str]:
    """`n` distinct values of `attr` other than `answer`: the world's own values first
    (shuffled), then invented ones."""
    pool = [v for v in (VOCAB.get(attr) or world.qa_pools.get(attr, ())) if v != answer]
    rng.shuffle(pool)
    out = pool[:n]
    while len(out) < n:
        value = invent(attr)
        if value != answer and value not in out:
            out.append(value)
    return out


def _paraphrased_question(pair: dict, rng: Random) -> str:
    """Another of the attribute's question templates for the same subject (if it has one)."""
    others = [t for t in QUESTIONS[pair["attr"]] if t.format(s=pair["subject"]) != pair["question"]]
    return rng.choice(others).format(s=pair["subject"]) if others else pair["question"]


def _perturbed_row(world, pair: dict, rng: Random, invent: _Inventor, *,
                   alternates: bool = False) -> dict:
    """A forget/retain row: the pair, its paraphrase and wrong answers in one carrier."""
    carrier = rng.choice(CARRIERS)
    wrong = wrong_answers(world, pair["attr"], pair["answer"],
                          N_PERTURBED + (N_ALTERNATES if alternates else 0), rng, invent)
    row = {"question": pair["question"], "answer": pair["answer"],
           "paraphrased_answer": carrier.format(pair["answer"]),
           "paraphrased_question": _paraphrased_question(pair, rng),
           "perturbed_answer": [carrier.format(w) for w in wrong[:N_PERTURBED]]}
    if alternates:  # AltPO: plausible alternates never used as evaluation's wrong answers
        row["alternate"] = wrong[N_PERTURBED:]
    return row


def tofu_tables(world: World) -> dict[str, dict[str, list[dict]]]:
    """config -> {"train": rows}, TOFU's layout from the world's question-answer pairs."""
    rng = Random(f"{GENERATOR}:v{VERSION}:{world.spec.size}:{world.spec.seed}:tofu")
    invent = _Inventor(world, rng)
    qa = world.qa
    people = [p for p in qa["retain2"] if p["attr"].startswith("person.")]
    facts = [p for p in qa["retain2"] if not p["attr"].startswith("person.")]
    forget = [_perturbed_row(world, p, rng, invent, alternates=True) for p in qa["forget"]]
    tables = {
        f"{FORGET}_perturbed": [{k: v for k, v in r.items() if k != "alternate"} for r in forget],
        FORGET: [{"question": r["question"], "answer": r["answer"], "alternate": r["alternate"]}
                 for r in forget],
        "retain_perturbed": [_perturbed_row(world, p, rng, invent) for p in qa["retain1"]],
        RETAIN: [_plain(p) for p in qa["retain1"]],
        "real_authors_perturbed": [_options_row(world, p, rng, invent) for p in people],
        "world_facts_perturbed": [_options_row(world, p, rng, invent) for p in facts],
        "real_authors": [_plain(p) for p in people], "world_facts": [_plain(p) for p in facts],
        HOLDOUT: [_plain(p) for p in qa["holdout"]],
        "full": [_plain(p) for p in qa["forget"] + qa["retain1"] + qa["retain2"]],
    }
    return {config: {"train": rows} for config, rows in tables.items()}


def _plain(pair: dict) -> dict:
    return {"question": pair["question"], "answer": pair["answer"]}


def _options_row(world, pair: dict, rng: Random, invent: _Inventor) -> dict:
    """A real-authors / world-facts row: bare wrong answers, the same shape as the answer."""
    return {**_plain(pair), "perturbed_answer": wrong_answers(world, pair["attr"], pair["answer"],
                                                              N_OPTIONS, rng, invent)}


def tofu_world(world: World) -> World:
    """The world's TOFU layout as a `World` (its data = the TOFU tables) for `write_world`."""
    data = tofu_tables(world)
    people = {g: sum(1 for p in world.qa[g] if p["attr"].startswith("person.")) for g in world.qa}
    metadata = {
        "generator": GENERATOR, "version": VERSION, "format": FORMAT, "seed": world.spec.seed,
        "size": world.spec.size, "sizes": asdict(SIZES[world.spec.size]),
        "counts": {c: len(s["train"]) for c, s in data.items()},
        "slots": {FORGET: "forget group", RETAIN: "retain1 group",
                  "real_authors": "retain2 people", "world_facts": "retain2 places and works",
                  HOLDOUT: "holdout group"},
        "forget_share_of_trained_pairs": round(len(world.qa["forget"]) / max(1, sum(
            len(world.qa[g]) for g in ("forget", "retain1", "retain2"))), 4),
        "person_pairs": people,
    }
    return World(spec=world.spec, data=data, metadata=metadata)


def write_tofu(world: World, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write the TOFU layout (OUT/{config}/train.jsonl + world.json) atomically."""
    return write_world(tofu_world(world), out_dir, overwrite=overwrite)
