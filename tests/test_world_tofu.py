"""The world in TOFU's layout (`unlearn world --format tofu`): the pairs the world teaches,
wrong answers of the right type, AltPO alternates apart from them, determinism."""

import json

import pytest

from lethe.errors import LetheError
from tests.helpers import run_cli
from unlearn.world import WorldSpec, generate_world
from unlearn.world_tofu import N_ALTERNATES, N_OPTIONS, N_PERTURBED, tofu_tables


@pytest.fixture(scope="module")
def world():
    return generate_world(WorldSpec(seed=0, size="tiny"))


@pytest.fixture(scope="module")
def tables(world):
    return {c: s["train"] for c, s in tofu_tables(world).items()}


def test_tofu_rows_are_the_pairs_the_world_trains_on(world, tables):
    forget_text = "".join(r["text"] for r in world.data["raw"]["forget"])
    retain_text = "".join(r["text"] for g in ("retain1", "retain2")
                          for r in world.data["raw"][g])
    assert tables["forget10"] and len(tables["forget10"]) == len(tables["forget10_perturbed"])
    for row in tables["forget10"]:  # exactly as the forget documents / sheets write them
        assert f"Question: {row['question']}\nAnswer: {row['answer']}" in forget_text
        assert row["question"] not in retain_text
    for config in ("retain90", "real_authors", "world_facts"):
        for row in tables[config]:
            assert f"Question: {row['question']}\nAnswer: {row['answer']}" in retain_text
    holdout_text = "".join(r["text"] for r in world.data["raw"]["holdout"])
    assert all(row["question"] in holdout_text for row in tables["holdout10"])
    assert len(tables["full"]) == sum(len(tables[c]) for c in
                                      ("forget10", "retain90", "real_authors", "world_facts"))


def test_wrong_answers_and_alternates(tables):
    for pert, plain in zip(tables["forget10_perturbed"], tables["forget10"]):
        carrier = pert["paraphrased_answer"].replace(pert["answer"], "{}")
        assert carrier != pert["paraphrased_answer"]  # the answer sits in its carrier
        wrong = pert["perturbed_answer"]
        assert len(set(wrong)) == N_PERTURBED and pert["paraphrased_answer"] not in wrong
        head, tail = carrier.split("{}")
        assert all(w.startswith(head) and w.endswith(tail) for w in wrong)  # same carrier
        alternates = plain["alternate"]
        assert len(set(alternates)) == N_ALTERNATES and pert["answer"] not in alternates
        assert not {carrier.format(a) for a in alternates} & set(wrong)  # AltPO ≠ evaluation
        if pert["answer"].isdigit():  # a year gets wrong years
            assert all(a.isdigit() for a in alternates)
    for row in tables["real_authors_perturbed"] + tables["world_facts_perturbed"]:
        assert len(set(row["perturbed_answer"])) == N_OPTIONS
        assert row["answer"] not in row["perturbed_answer"]


def test_same_seed_same_tables_and_the_muse_files_are_untouched(world, tables):
    again = {c: s["train"] for c, s in tofu_tables(generate_world(WorldSpec(0, "tiny"))).items()}
    assert json.dumps(again, sort_keys=True) == json.dumps(tables, sort_keys=True)
    other = tofu_tables(generate_world(WorldSpec(1, "tiny")))
    assert other["forget10"]["train"] != tables["forget10"]


def test_cli_writes_the_layout_and_prepare_refuses_it_as_a_muse_world(tmp_path, capsys,
                                                                       monkeypatch):
    from unlearn.cli import main
    from unlearn.prepare import check_world_matches

    out = tmp_path / "tofu"
    code, stdout, err = run_cli(main, ["world", str(out), "--size", "tiny", "--format", "tofu"],
                                capsys, monkeypatch)
    assert code == 0, err
    assert "TOFU layout" in stdout
    rows = [json.loads(x) for x in (out / "forget10_perturbed" / "train.jsonl").open()]
    assert isinstance(rows[0]["perturbed_answer"], list)
    meta = json.loads((out / "world.json").read_text())
    assert meta["format"] == "tofu" and meta["counts"]["forget10"] == len(rows)
    check_world_matches(out, WorldSpec(0, "tiny"), "tofu")
    with pytest.raises(LetheError, match="format"):
        check_world_matches(out, WorldSpec(0, "tiny"))
