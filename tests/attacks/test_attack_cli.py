"""`unlearn attack`: results.json + results.md on checkpoints; bad input exits 2 with one line."""

import json
import sys

import pytest


def _run(monkeypatch, capsys, *args):
    from unlearn.cli import main

    monkeypatch.setattr(sys, "argv", ["unlearn", "attack", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()


def test_attack_command_writes_results(checkpoints, tmp_path, monkeypatch, capsys):
    world, base, edited = checkpoints
    out = tmp_path / "out"
    code, io = _run(monkeypatch, capsys, str(edited), "--data", str(world), "--base", str(base),
                    "--layers", "2,3", "--k", "2", "--paraphrases", "2", "--samples", "2",
                    "--out", str(out), "--device", "cpu")
    assert code == 0, io.err
    res = json.loads((out / "results.json").read_text())
    assert res["n_facts"] == 3 and res["split"] == "forget"
    budgets = {name: a["budget"] for name, a in res["attacks"].items()}
    assert budgets == {"head_projection": 2 * 2 * 2, "prob_delta": 2 * 2 * 1, "rephrase": 2 * 2}
    for name, a in res["attacks"].items():
        assert a["success_rate"] == sum(r["success"] for r in res["per_fact"][name]) / 3
    ed = res["editing"]
    assert ed["rewrite_score"] == pytest.approx(1 / 3, abs=0.01)
    assert ed["delta_acc_neighborhood"] == pytest.approx(1 / 3)
    assert ed["delta_acc_random"] == pytest.approx(1 / 3)
    assert res["model"]["kind"] == "dir" and res["base"]["weights_sha256_16"]
    md = (out / "results.md").read_text()
    assert "| attack | budget B | success@B | facts |" in md and "rewrite score" in md
    # --budget sets k = B // (2|L|) and m = B // n; a second run needs --overwrite
    code, io = _run(monkeypatch, capsys, str(edited), "--data", str(world), "--layers", "2,3",
                    "--budget", "8", "--attacks", "head_projection,rephrase", "--out", str(out),
                    "--device", "cpu", "--limit", "2")
    assert code == 2 and "--overwrite" in io.err
    code, io = _run(monkeypatch, capsys, str(edited), "--data", str(world), "--layers", "2,3",
                    "--budget", "8", "--attacks", "head_projection,rephrase", "--out", str(out),
                    "--device", "cpu", "--limit", "2", "--overwrite")
    assert code == 0, io.err
    res = json.loads((out / "results.json").read_text())
    assert {n: a["budget"] for n, a in res["attacks"].items()} == {"head_projection": 8,
                                                                  "rephrase": 8}
    assert res["n_facts"] == 2 and "rewrite_score" not in res["editing"]


@pytest.mark.parametrize("args, message", [
    (["--attacks", "head_projektion"], "unknown attack 'head_projektion'"),
    (["--split", "nope"], "has no split 'nope'"),
    (["--layers", "2,x"], "--layers must be comma-separated integers"),
    (["--layers", "9"], "out of range"),
    (["--budget", "3", "--layers", "2,3"], "--budget 3 is too small"),
])
def test_attack_command_bad_input_exits_2(checkpoints, tmp_path, monkeypatch, capsys, args,
                                          message):
    world, base, edited = checkpoints
    code, io = _run(monkeypatch, capsys, str(edited), "--data", str(world), "--out",
                    str(tmp_path / "o"), "--device", "cpu", *args)
    errors = [x for x in io.err.splitlines() if x.startswith("unlearn: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0], io.err
    assert "Traceback" not in io.err


def test_a_whp_mixture_gets_the_black_box_attack_and_a_clear_refusal_for_the_rest(
        checkpoints, tmp_path, monkeypatch, capsys):
    """A logit mixture (WHP as MUSE evaluates it) has no layers for the logit lens: the
    rephrasing attack (black-box) runs on it; the white-box ones are refused in one line."""
    from lethe.loading import load_model, load_tokenizer
    from lethe.mixture import LogitMixture

    world, base, edited = checkpoints
    mix = tmp_path / "mix"
    LogitMixture(load_model(str(base)), load_model(str(edited)), alpha=1.0,
                 baseline_spec=str(base)).save_pretrained(mix)
    load_tokenizer(str(base)).save_pretrained(mix)
    common = [str(mix), "--data", str(world), "--device", "cpu", "--paraphrases", "2",
              "--samples", "2"]
    code, io = _run(monkeypatch, capsys, *common, "--attacks", "rephrase", "--out",
                    str(tmp_path / "ok"))
    assert code == 0, io.err
    res = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert list(res["attacks"]) == ["rephrase"] and res["attacks"]["rephrase"]["budget"] == 4
    assert res["model"]["mixture"]["alpha"] == 1.0
    code, io = _run(monkeypatch, capsys, *common, "--out", str(tmp_path / "no"))
    errors = [x for x in io.err.splitlines() if x.startswith("unlearn: error:")]
    assert code == 2 and len(errors) == 1 and "--attacks rephrase" in errors[0], io.err
    assert "Traceback" not in io.err
