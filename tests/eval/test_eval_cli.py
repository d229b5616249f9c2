"""`unlearn eval`: bad input is one line + exit 2 (no traceback); the happy path writes the
report. Runs the real entry point (`unlearn.cli.main`, i.e. run_cli) in-process, plus one
subprocess to see exactly what a user sees."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def unlearn(monkeypatch, capsys, *args):
    from unlearn.cli import main

    monkeypatch.setattr(sys, "argv", ["unlearn", "eval", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def broken(tmp_path, world_dir):
    """A copy of the world to damage."""
    return Path(shutil.copytree(world_dir, tmp_path / "world"))


def test_missing_config(monkeypatch, capsys, broken, saved_models):
    shutil.rmtree(broken / "knowmem")
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", broken,
                           "--retrain-auc", "0.5", "--out", broken.parent / "o")
    assert_one_line_error(code, err, "no config 'knowmem'")


def test_missing_split(monkeypatch, capsys, broken, saved_models):
    (broken / "knowmem" / "retain_qa_icl.jsonl").unlink()
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", broken,
                           "--metrics", "knowmem_r")
    assert_one_line_error(code, err, "no split 'retain_qa_icl'")


def test_missing_field(monkeypatch, capsys, broken, saved_models):
    (broken / "verbmem" / "forget.jsonl").write_text('{"prompt": "a"}\n')
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", broken,
                           "--metrics", "verbmem_f")
    assert_one_line_error(code, err, "lacks field(s) gt", "verbmem")


def test_empty_split(monkeypatch, capsys, broken, saved_models):
    (broken / "privleak" / "holdout.jsonl").write_text("")
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", broken,
                           "--metrics", "privleak", "--retrain-auc", "muse-news")
    assert_one_line_error(code, err, "(config privleak) split holdout is empty")


def test_model_dir_without_tokenizer(monkeypatch, capsys, world_dir, saved_models, tmp_path):
    code, _, err = unlearn(monkeypatch, capsys, saved_models["no_tokenizer"], "--data",
                           world_dir, "--metrics", "knowmem_r", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "no tokenizer")


def test_unknown_metric_lists_valid_ones(monkeypatch, capsys, world_dir, saved_models):
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", world_dir,
                           "--metrics", "verbmem_f,rouge")
    assert_one_line_error(code, err, "unknown metric(s) rouge", "knowmem_f, knowmem_r, ",
                          "privleak, ", "forget_quality, ", "verbmem_f")


def test_privleak_without_a_retrain_reference(monkeypatch, capsys, world_dir, saved_models):
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", world_dir,
                           "--metrics", "privleak,knowmem_r")
    assert_one_line_error(code, err, "privleak needs a retrain reference", "--retrain")


@pytest.mark.parametrize("auc", ["0", "1.5", "-0.2", "abc"])
def test_retrain_auc_outside_0_1(monkeypatch, capsys, world_dir, saved_models, auc):
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", world_dir,
                           "--retrain-auc", auc)
    assert_one_line_error(code, err, "(0, 1]")


def test_refuses_a_non_empty_out_dir_and_label_mismatch(monkeypatch, capsys, world_dir,
                                                        saved_models, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("earlier results")
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", world_dir,
                           "--metrics", "knowmem_r", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "not empty", "--overwrite")
    assert (tmp_path / "o" / "keep.txt").read_text() == "earlier results"
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", world_dir,
                           "--labels", "a,b")
    assert_one_line_error(code, err, "--labels")


def test_happy_path_writes_json_md_png(monkeypatch, capsys, world_dir, saved_models, tmp_path):
    out = tmp_path / "eval"
    code, stdout, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data",
                                world_dir, "--retrain", saved_models["retrain"], "--out", out,
                                "--limit", "3", "--n-resamples", "200", "--batch-size", "4",
                                "--device", "cpu")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "results.png"}
    r = json.loads((out / "results.json").read_text())
    assert [m["label"] for m in r["models"]] == ["target", "retrain"]
    target, retrain = r["models"]
    assert target["identity"]["kind"] == "dir" and len(target["identity"]["weights_sha256_16"])
    assert retrain["scores"]["privleak"]["value"] == 0.0
    assert target["scores"]["privleak"]["value"] < -80
    md = (out / "results.md").read_text()
    assert "| model | role | VerbMem_f ↓ | KnowMem_f ↓ | PrivLeak →0 | KnowMem_r ↑ |" in md
    assert md.count("\n| ") == 3  # header + two model rows: one table
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PrivLeak" in stdout


def test_what_a_user_sees_in_a_terminal(world_dir, saved_models, tmp_path):
    broken = Path(shutil.copytree(world_dir, tmp_path / "world"))
    (broken / "knowmem" / "forget_qa.jsonl").write_text('{"question": "q"}\n')
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "unlearn", "eval", str(saved_models["target"]),
                           "--data", str(broken), "--metrics", "knowmem_f"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    line = assert_one_line_error(proc.returncode, proc.stderr, "lacks field(s) answer")
    assert line.startswith("unlearn: error: --data (knowmem_f): dataset ")  # which metric reads it


def test_reads_a_muse_hub_layout_through_load_dataset(monkeypatch, capsys, world, world_dir,
                                                      saved_models, tmp_path):
    """A directory in MUSE-Books's hub layout (parquet + card) is evaluated like the jsonl
    world it was written from, every table read by `datasets.load_dataset(DIR, config,
    split=...)`, the call `--data muse-bench/MUSE-Books` makes."""
    import datasets

    from eval.muse.suite import load_suite_data
    from eval.muse.registry import SuiteSettings
    from unlearn.hub_layout import write_hub_files

    hub = tmp_path / "hub"
    write_hub_files(world, hub, layout="muse-books")
    calls, real = [], datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: calls.append((a, k.get("split"))) or real(*a, **k))
    metrics = ["verbmem_f", "knowmem_f", "knowmem_r", "privleak"]
    tables, _ = load_suite_data(str(hub), metrics, settings=SuiteSettings())
    assert {(a[0], a[1], split) for a, split in calls} == {
        (str(hub), "verbmem", "forget"), (str(hub), "knowmem", "forget_qa"),
        (str(hub), "knowmem", "forget_qa_icl"), (str(hub), "knowmem", "retain_qa"),
        (str(hub), "knowmem", "retain_qa_icl"), (str(hub), "privleak", "forget"),
        (str(hub), "privleak", "holdout")}
    assert tables == load_suite_data(str(world_dir), metrics, settings=SuiteSettings())[0]
    code, _, err = unlearn(monkeypatch, capsys, saved_models["target"], "--data", hub,
                           "--retrain", saved_models["retrain"], "--out", tmp_path / "eval",
                           "--limit", "3", "--n-resamples", "100", "--batch-size", "4",
                           "--device", "cpu", "--metrics", "verbmem_f,privleak")
    assert code == 0, err
    r = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert r["models"][0]["scores"]["privleak"]["value"] < -80  # the memorised target
