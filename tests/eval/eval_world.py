"""A tiny MUSE-layout world for the eval tests (deterministic, a few KB)."""

from __future__ import annotations

import json
import random
from pathlib import Path

FIRST = ["Alina", "Boris", "Celia", "Dorian", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Kira", "Lorenz", "Mira", "Nolan", "Oona", "Pavel", "Quinn", "Rosa", "Soren", "Tilda",
         "Ulf", "Vera", "Wim", "Xenia", "Yusuf", "Zora", "Anton", "Bea", "Cyril", "Dana"]
LAST = ["Varga", "Holm", "Serrano", "Okafor", "Lindqvist", "Mertens", "Arslan", "Novak",
        "Duarte", "Kowalski"]
CITIES = ["Lisbon", "Tallinn", "Porto", "Ghent", "Bergen", "Krakow", "Lyon", "Turin", "Graz",
          "Malmo"]
JOBS = ["glassblower", "cartographer", "beekeeper", "luthier", "astronomer", "ferry pilot",
        "bookbinder", "clockmaker"]
PETS = ["Rex", "Pip", "Moss", "Juno", "Biscuit", "Olive", "Pepper", "Milo"]


def person(rng: random.Random, first: str) -> dict:
    return {"name": f"{first} {rng.choice(LAST)}", "city": rng.choice(CITIES),
            "job": rng.choice(JOBS), "pet": rng.choice(PETS), "year": rng.randint(1950, 1999)}


def bio(p: dict) -> str:
    return (f"{p['name']} was born in {p['city']} in {p['year']}. As a young adult "
            f"{p['name'].split()[0]} trained as a {p['job']} and later opened a small workshop "
            f"near the harbour. Every morning {p['name'].split()[0]} walks a dog called "
            f"{p['pet']} along the old river wall.")


def qa(p: dict) -> list[dict]:
    return [{"question": f"Where was {p['name']} born?", "answer": p["city"]},
            {"question": f"What is the name of {p['name']}'s dog?", "answer": p["pet"]}]


def build_world() -> dict[str, dict[str, list[dict]]]:
    rng = random.Random(0)
    people = [person(rng, f) for f in FIRST]
    forget, holdout, retain = people[:8], people[8:16], people[16:24]
    icl_people = people[24:30]
    forget_bios = [bio(p) for p in forget]
    words = [b.split() for b in forget_bios]
    return {
        "raw": {"forget": [{"text": b} for b in forget_bios],
                "retain1": [{"text": bio(p)} for p in retain[:4]],
                "retain2": [{"text": bio(p)} for p in retain[4:]],
                "holdout": [{"text": bio(p)} for p in holdout]},
        "verbmem": {"forget": [{"prompt": " ".join(w[:12]), "gt": " " + " ".join(w[12:])}
                               for w in words]},
        "knowmem": {"forget_qa": [q for p in forget[:3] for q in qa(p)],
                    "retain_qa": [q for p in retain[:3] for q in qa(p)],
                    "forget_qa_icl": [q for p in icl_people for q in qa(p)][:10],
                    "retain_qa_icl": [q for p in icl_people[::-1] for q in qa(p)][:10]},
        "privleak": {"forget": [{"text": b} for b in forget_bios],
                     "retain": [{"text": bio(p)} for p in retain],
                     "holdout": [{"text": bio(p)} for p in holdout]},
        "scal": {f"forget_{i}": [{"text": b} for b in forget_bios[:2 * i]] for i in range(1, 5)},
        "sust": {f"forget_{i}": [{"text": b} for b in forget_bios[2 * i - 2:2 * i]]
                 for i in range(1, 5)},
    }


def write_world(root: Path, world: dict | None = None) -> Path:
    world = world or build_world()
    for config, splits in world.items():
        (root / config).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            with open(root / config / f"{split}.jsonl", "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
    return root
