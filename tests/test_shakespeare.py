"""The offline real-text case: MUSE layout from the bundled plays, fine-tuning a base model."""

import json

import pytest

from lethe.errors import LetheError
from unlearn.shakespeare import ShakespeareSection, build, ensure_shakespeare, speeches


def test_speeches_parse_speaker_blocks():
    text = "ACT I.\n\nFIRST WITCH.\nWhen shall we three meet again?\nIn thunder?\n\n" \
           "[Exeunt.]\n\nMACBETH.\nSo foul and fair a day I have not seen."
    assert speeches(text) == [("First Witch", "When shall we three meet again?\nIn thunder?"),
                              ("Macbeth", "So foul and fair a day I have not seen.")]


@pytest.fixture(scope="module")
def small():
    return ShakespeareSection(retain_plays=("hamlet", "othello"), holdout_plays=("cymbeline",),
                              max_forget_chunks=8, max_retain_chunks=8)


def test_layout_and_who_says_questions(small):
    data = build(small)
    forget = "\n\n".join(r["text"] for r in data["raw"]["forget"])
    assert len(data["raw"]["forget"]) == 8 == len(data["raw"]["holdout"])
    assert len(data["knowmem"]["forget_qa_icl"]) == 10
    for row in data["knowmem"]["forget_qa"]:
        line = row["question"][len('Who says "'):-2]
        # the quoted line opens a speech by the answering speaker, in a trained passage
        assert f"{row['answer'].upper()}.\n{line}" in forget
    assert data["scal"]["forget_4"] == data["raw"]["forget"]
    assert data["sust"]["forget_1"] + data["sust"]["forget_2"] == data["scal"]["forget_2"]
    for r in data["verbmem"]["forget"]:
        assert r["prompt"] and r["gt"] and f"{r['prompt']}" in forget


def test_unknown_play_is_one_line(small):
    from dataclasses import replace

    with pytest.raises(LetheError, match="unknown play 'king_lear'; available: .*lear"):
        build(replace(small, forget_play="king_lear"))


def test_ensure_writes_once(tmp_path, small):
    from dataclasses import replace

    section = replace(small, dir=str(tmp_path / "sh"))
    out = ensure_shakespeare(section)
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["forget_play"] == "macbeth" and (out / "knowmem" / "forget_qa.jsonl").is_file()
    stamp = (out / "raw" / "forget.jsonl").stat().st_mtime_ns
    ensure_shakespeare(section)
    assert (out / "raw" / "forget.jsonl").stat().st_mtime_ns == stamp


def test_facts_are_the_evaluated_who_says_lines(small):
    """`facts` (for `unlearn attack`): one CounterFact-style row per evaluated who-says
    question, forget and retain; a forget line's neighbours are retain-play lines."""
    data = build(small)
    facts = data["facts"]
    for side in ("forget", "retain"):
        qa = data["knowmem"][f"{side}_qa"]
        assert [(f'Who says "{f["subject"]}"?', f["target_true"]) for f in facts[side]] == \
            [(q["question"], q["answer"]) for q in qa]
    retain_lines = {f["subject"]: f["target_true"] for f in facts["retain"]}
    for f in facts["forget"]:
        assert f["prompt"].format(f["subject"]).endswith(f'"{f["subject"]}" is spoken by')
        assert len(f["neighborhood"]) == 3
        for n in f["neighborhood"]:
            assert retain_lines[n["subject"]] == n["target"] and n["subject"] in n["prompt"]
    ids = [f["case_id"] for side in ("forget", "retain") for f in facts[side]]
    assert sorted(ids) == list(range(len(ids)))


def test_hub_format_is_read_like_the_hub_dataset(tmp_path, small):
    """`shakespeare.format: muse-books` writes MUSE-Books's hub layout (parquet + card, no
    facts), which `load_table` reads through `datasets.load_dataset`."""
    from dataclasses import replace

    from lethe.loading import hub_layout, load_table

    out = ensure_shakespeare(replace(small, dir=str(tmp_path / "sh"), format="muse-books"))
    data = build(small)
    assert hub_layout(out) and not (out / "facts").exists() and not (out / "scal").exists()
    assert load_table(out, config="knowmem", split="forget_qa").to_list() == \
        data["knowmem"]["forget_qa"]
    assert list(load_table(out, config="train", split="forget")["text"]) == \
        [r["text"] for r in data["raw"]["forget"]]
    assert json.loads((out / "corpus.json").read_text())["format"] == "muse-books"
