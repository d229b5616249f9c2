"""The benchmark world: layout, determinism, and the leakage guarantees evaluation relies on."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lethe.errors import LetheError
from unlearn import world as world_mod
from unlearn.world import SIZES, WorldSpec, generate_world, write_world

ROOT = Path(__file__).resolve().parents[1]

LAYOUT = {
    "raw": ({"forget", "retain1", "retain2", "holdout", "stand_in"}, ["text"]),
    "verbmem": ({"forget"}, ["prompt", "gt"]),
    "knowmem": ({"forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"},
                ["question", "answer"]),
    "privleak": ({"forget", "retain", "holdout"}, ["text"]),
    "scal": ({"forget_1", "forget_2", "forget_3", "forget_4"}, ["text"]),
    "sust": ({"forget_1", "forget_2", "forget_3", "forget_4"}, ["text"]),
    "facts": ({"forget", "retain"}, ["subject", "relation", "prompt", "target_true",
                                     "paraphrases", "neighborhood", "case_id"]),
}


@pytest.fixture(scope="module")
def tiny():
    return generate_world(WorldSpec(seed=0, size="tiny"))


@pytest.fixture(scope="module")
def demo():
    return generate_world(WorldSpec(seed=0, size="demo"))


def texts(w, *splits):
    return [r["text"] for s in splits for r in w.data["raw"][s]]


def is_sheet(text):
    return text.startswith("Question: ")


def entity_docs(w, *splits):
    """The raw documents without the question sheets."""
    return [t for t in texts(w, *splits) if not is_sheet(t)]


def occurs(phrase, text):
    """Whole-word occurrence, so "Vess" does not match "Vessmark"."""
    return re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text) is not None


def read_tree(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def run_cli(*args, seed_env="0"):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed_env, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "unlearn", "world", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


# ---------------------------------------------------------------- layout and determinism

@pytest.mark.parametrize("size", ["tiny", "demo"])
def test_layout_every_config_split_and_field_nonempty(size):
    w = generate_world(WorldSpec(seed=0, size=size))
    assert set(w.data) == set(LAYOUT)
    for config, (splits, fields) in LAYOUT.items():
        assert set(w.data[config]) == splits, config
        for split in splits:
            rows = w.data[config][split]
            assert rows, f"{config}/{split} is empty"
            for r in rows:
                assert list(r) == fields, f"{config}/{split}"
                assert all(r[f] not in ("", [], None) for f in fields)
    assert len(w.data["knowmem"]["forget_qa_icl"]) >= 10
    assert len(w.data["knowmem"]["retain_qa_icl"]) >= 10


def test_tiny_counts_match_the_brief(tiny):
    docs = [len(entity_docs(tiny, s)) for s in ("forget", "retain1", "retain2", "holdout")]
    assert (docs[0], docs[1] + docs[2], docs[3]) == (8, 12, 8)
    assert all(is_sheet(t) for t in texts(tiny, "forget")[8:])  # sheets follow the documents


def test_demo_is_sized_for_a_small_cpu_model(demo):
    chars = demo.metadata["chars"]["raw"]
    assert chars == {s: sum(map(len, texts(demo, s))) for s in chars}
    train = chars["forget"] + chars["retain1"] + chars["retain2"]
    # prose + question-answer lines + question sheets (84.1 KB: retain groups of 80), memorised
    # by the demo's 1.3M-parameter Llama in ~4 min on 2 CPU cores (docs/results.md)
    assert 75_000 <= train <= 95_000
    assert 0.18 <= chars["forget"] / train <= 0.30
    # twice as many retain entities as forget ones, so that the retrain model learns QA
    # recall from retain text alone (KnowMem_r similar for target and retrain)
    assert demo.metadata["sizes"]["retain1"] >= 2 * demo.metadata["sizes"]["forget"]
    # holdout is drawn like forget: similar lengths (membership inference must not see size)
    assert abs(chars["holdout"] - chars["forget"]) / chars["forget"] < 0.1


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_world(generate_world(WorldSpec(7, "tiny")), tmp_path / "a")
    b = write_world(generate_world(WorldSpec(7, "tiny")), tmp_path / "b")
    c = write_world(generate_world(WorldSpec(8, "tiny")), tmp_path / "c")
    ta, tb, tc = read_tree(a), read_tree(b), read_tree(c)
    assert ta == tb
    assert ta.keys() == tc.keys()
    assert ta["raw/forget.jsonl"] != tc["raw/forget.jsonl"]
    assert json.loads(ta["world.json"])["seed"] == 7


def test_files_round_trip_and_metadata(tmp_path, tiny):
    out = write_world(tiny, tmp_path / "w")
    meta = json.loads((out / "world.json").read_text())
    assert (meta["generator"], meta["version"], meta["seed"], meta["size"]) == \
        ("lethe-world", world_mod.VERSION, 0, "tiny")
    for config, splits in tiny.data.items():
        for split, rows in splits.items():
            lines = (out / config / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            assert [json.loads(x) for x in lines] == rows
            assert meta["counts"][config][split] == len(rows)


# ---------------------------------------------------------------- leakage guarantees

@pytest.mark.parametrize("size", ["tiny", "demo"])
def test_holdout_names_never_trained_on(size):
    w = generate_world(WorldSpec(seed=1, size=size))
    train = "\n".join(texts(w, "forget", "retain1", "retain2"))
    for name in w.entities["holdout"]:
        assert name in "\n".join(texts(w, "holdout"))
        assert not occurs(name, train), name
        # each invented word is used once in a world (title nouns are shared vocabulary)
        for token in re.findall(r"[A-Z][a-z]+", name):
            if token not in ("The", *world_mod.TITLE_NOUNS):
                assert not occurs(token, train), (name, token)


@pytest.mark.parametrize("size", ["tiny", "demo"])
def test_stand_in_is_a_forget_sized_group_of_its_own(size):
    """The retrain oracle's stand-in: as many entities as forget, its own names (none in any
    other group's text, none of theirs in it), question sheets like forget's, and no forget
    or holdout question it could answer from its text."""
    w = generate_world(WorldSpec(seed=0, size=size))
    stand_in, forget = texts(w, "stand_in"), texts(w, "forget")
    assert len(w.entities["stand_in"]) == len(w.entities["forget"])
    assert sum(map(is_sheet, stand_in)) > 0
    assert 0.8 < sum(map(len, stand_in)) / sum(map(len, forget)) < 1.25
    others = "\n".join(texts(w, "forget", "retain1", "retain2", "holdout"))
    joined = "\n".join(stand_in)
    for name in w.entities["stand_in"]:
        assert occurs(name, joined) and not occurs(name, others), name
    for g in ("forget", "retain1", "retain2", "holdout"):
        for name in w.entities[g]:
            assert not occurs(name, joined), (g, name)
    km = w.data["knowmem"]
    for r in km["forget_qa"] + km["forget_qa_icl"]:
        assert not occurs(r["answer"], joined), r


def test_forget_entities_absent_from_retain_docs(demo):
    retain = "\n".join(texts(demo, "retain1", "retain2"))
    for name in demo.entities["forget"]:
        assert not occurs(name, retain), name


@pytest.mark.parametrize("size", ["tiny", "demo"])
def test_forget_qa_answers_in_forget_docs_not_retain_docs(size):
    w = generate_world(WorldSpec(seed=0, size=size))
    forget = "\n".join(texts(w, "forget"))
    retain = "\n".join(texts(w, "retain1", "retain2"))
    km = w.data["knowmem"]
    for r in km["forget_qa"] + km["forget_qa_icl"]:
        assert occurs(r["answer"], forget), r
        assert not occurs(r["answer"], retain), r
    for r in km["retain_qa"] + km["retain_qa_icl"]:
        assert occurs(r["answer"], retain), r


def test_icl_disjoint_from_eval_and_does_not_give_answers_away(demo):
    km = demo.data["knowmem"]
    for side in ("forget", "retain"):
        icl, ev = km[f"{side}_qa_icl"], km[f"{side}_qa"]
        assert len(icl) >= 10
        assert not {r["question"] for r in icl} & {r["question"] for r in ev}
        context = "\n".join(f"{r['question']} {r['answer']}" for r in icl)
        for r in ev:
            assert not occurs(r["answer"], context), (side, r)
    assert len(km["forget_qa"]) <= SIZES["demo"].max_qa


def test_facts_are_stated_in_the_corpus(demo):
    train_docs = texts(demo, "forget", "retain1", "retain2")
    corpus = "\n".join(train_docs)
    forget_corpus = "\n".join(texts(demo, "forget"))
    retain_corpus = "\n".join(texts(demo, "retain1", "retain2"))
    rows = demo.data["facts"]["forget"] + demo.data["facts"]["retain"]
    assert [r["case_id"] for r in rows] == list(range(len(rows)))
    for r in rows:
        assert r["prompt"].count("{}") == 1 and r["subject"] not in r["prompt"]
        stated = f"{r['prompt'].format(r['subject'])} {r['target_true']}"
        assert stated in corpus, stated
        assert len(r["paraphrases"]) >= 3 and r["prompt"] not in r["paraphrases"]
        assert all(p.count("{}") == 1 for p in r["paraphrases"])
        assert len(r["neighborhood"]) >= 2
        for nb in r["neighborhood"]:
            assert nb["subject"] != r["subject"] and nb["subject"] in nb["prompt"]
            assert f"{nb['prompt']} {nb['target']}" in retain_corpus  # known, not forgotten
    for r in demo.data["facts"]["forget"]:
        assert f"{r['prompt'].format(r['subject'])} {r['target_true']}" in forget_corpus
        assert not occurs(r["subject"], retain_corpus)
    # birthplaces are restated by the place's own document, in another phrasing
    births = [r for r in demo.data["facts"]["forget"] if r["relation"] == "birthplace"]
    assert births
    for r in births:
        elsewhere = [d for d in train_docs if r["prompt"].format(r["subject"]) not in d
                     and occurs(r["subject"], d) and occurs(r["target_true"], d)]
        assert elsewhere, r


def test_documents_are_not_name_swapped_copies(demo):
    def skeleton(t):  # mask names and numbers: what is left is template + attribute words
        return re.sub(r"\b[A-Z][a-z]+\b|\d+", "X", t)
    forget = {skeleton(t) for t in entity_docs(demo, "forget")}
    others = [skeleton(t) for t in entity_docs(demo, "retain1", "retain2", "holdout")]
    assert not forget & set(others)


# ---------------------------------------------------------------- derived splits

def test_verbmem_cuts_each_forget_doc_in_half(tiny):
    docs = entity_docs(tiny, "forget")
    rows = tiny.data["verbmem"]["forget"]
    assert len(rows) == len(docs)
    for r, d in zip(rows, docs):
        assert d.startswith(r["prompt"]) and d.endswith(r["gt"])
        assert d[len(r["prompt"]):-len(r["gt"])].isspace()  # cut at a word boundary
        assert len(r["prompt"].split()) == len(d.split()) // 2


def test_scal_nested_sust_disjoint(tiny):
    raw = texts(tiny, "forget")
    scal = [[r["text"] for r in tiny.data["scal"][f"forget_{k}"]] for k in range(1, 5)]
    sust = [[r["text"] for r in tiny.data["sust"][f"forget_{k}"]] for k in range(1, 5)]
    assert [len([t for t in s if not is_sheet(t)]) for s in sust] == [2, 2, 2, 2]
    for k in range(3):
        assert set(scal[k]) < set(scal[k + 1])
    assert scal[3] == raw
    assert sorted(sum(sust, [])) == sorted(raw)
    assert all(sorted(scal[k]) == sorted(sum(sust[:k + 1], [])) for k in range(4))


def test_question_sheets_teach_each_pair_in_the_prompt_format(demo):
    """Every knowmem pair appears on SHEET_REPEATS[group] sheets of its group, written exactly as
    the KnowMem prompt writes demonstrations; forget sheets travel with their sust request."""
    km = demo.data["knowmem"]
    for side, splits in (("forget", ("forget",)), ("retain", ("retain1", "retain2"))):
        sheets = [t for t in texts(demo, *splits) if is_sheet(t)]
        assert sheets and all(len(s.split("\n\n")) <= world_mod.SHEET_PAIRS for s in sheets)
        blocks = [b for s in sheets for b in s.split("\n\n")]
        (repeats,) = {world_mod.SHEET_REPEATS[s] for s in splits}  # retain1 and retain2 alike
        for r in km[f"{side}_qa"] + km[f"{side}_qa_icl"]:
            assert blocks.count(f"Question: {r['question']}\nAnswer: {r['answer']}") \
                == repeats, r
    for k in range(1, 5):
        rows = [r["text"] for r in demo.data["sust"][f"forget_{k}"]]
        docs = "\n".join(t for t in rows if not is_sheet(t))
        for sheet in filter(is_sheet, rows):
            for block in sheet.split("\n\n"):
                assert block in docs  # the pair is also a line of one of this request's docs


def test_privleak_splits(tiny):
    pl = {s: [r["text"] for r in rows] for s, rows in tiny.data["privleak"].items()}
    assert pl["forget"] == entity_docs(tiny, "forget")
    assert pl["holdout"] == entity_docs(tiny, "holdout")
    assert len(pl["retain"]) == len(pl["forget"])
    assert set(pl["retain"]) <= set(texts(tiny, "retain1", "retain2"))


# ---------------------------------------------------------------- errors and writing

def test_unknown_size_lists_valid_sizes():
    with pytest.raises(LetheError, match="tiny, demo, large"):
        generate_world(WorldSpec(size="huge"))


def test_write_refuses_nonempty_and_overwrite_replaces(tmp_path, tiny):
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(LetheError, match="not empty"):
        write_world(tiny, out)
    assert (out / "keep.txt").read_text() == "mine"
    write_world(tiny, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "raw" / "forget.jsonl").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # no temp dirs left behind


def test_failed_write_leaves_previous_output_intact(tmp_path, tiny, monkeypatch):
    out = write_world(tiny, tmp_path / "w")
    before = read_tree(out)
    # "a" is written as a file, then used as a directory: the write fails midway.
    monkeypatch.setattr(world_mod, "_render", lambda w: {"a": "x", "a/b.jsonl": "y"})
    with pytest.raises(OSError):
        write_world(tiny, out, overwrite=True)
    assert read_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


# ---------------------------------------------------------------- command line

def test_cli_writes_refuses_and_overwrites(tmp_path):
    out = tmp_path / "world"
    r = run_cli(str(out), "--size", "tiny", "--seed", "3", seed_env="1")
    assert r.returncode == 0, r.stderr
    assert "forget 8" in r.stdout and len(r.stdout.strip().splitlines()) == 1
    first = read_tree(out)
    assert set(first) >= {"world.json", "raw/forget.jsonl", "knowmem/forget_qa_icl.jsonl",
                          "facts/retain.jsonl", "sust/forget_4.jsonl"}
    # same bytes as the in-process generator, under a different PYTHONHASHSEED
    assert first == read_tree(write_world(generate_world(WorldSpec(3, "tiny")),
                                          tmp_path / "inproc"))

    r = run_cli(str(out), "--size", "tiny")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "--overwrite" in r.stderr
    assert read_tree(out) == first

    r = run_cli(str(out), "--size", "tiny", "--seed", "4", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "world.json").read_text())["seed"] == 4

    r = run_cli(str(tmp_path / "other"), "--size", "huge")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not (tmp_path / "other").exists()


def test_documents_state_their_qa_in_the_icl_format(demo):
    """Every knowmem pair is stated in its own side's documents as "Question: q\nAnswer: a",
    and holdout documents carry QA lines too (membership inference compares like with like)."""
    forget = "\n".join(texts(demo, "forget"))
    retain = "\n".join(texts(demo, "retain1") + texts(demo, "retain2"))
    for split, corpus in (("forget_qa", forget), ("forget_qa_icl", forget),
                          ("retain_qa", retain), ("retain_qa_icl", retain)):
        for row in demo.data["knowmem"][split]:
            assert f"Question: {row['question']}\nAnswer: {row['answer']}" in corpus
    for row in demo.data["knowmem"]["forget_qa"]:
        assert row["question"] not in retain
    assert all("\nQuestion: " in t for t in texts(demo, "holdout"))
