"""Bad input on the `unlearn` command line: one clear line, exit code 2, no traceback."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli
from unlearn.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def world(tmp_path_factory):
    from unlearn.world import WorldSpec, generate_world, write_world

    out = tmp_path_factory.mktemp("w") / "world"
    write_world(generate_world(WorldSpec(seed=0, size="tiny")), out)
    return out


def recipe(tmp_path, body):
    path = tmp_path / "r.yaml"
    path.write_text(body)
    return str(path)


def one_error_line(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_recipe_file(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(main, ["run", str(tmp_path / "nope.yaml")], capsys, monkeypatch)
    one_error_line(code, err, "recipe file not found", "nope.yaml")


@pytest.mark.parametrize("body, needles", [
    ("method: {name: ga\n", ["malformed YAML", "line"]),
    ("method: ga\ntrain: {max_steps: 1}\ndata: {forget: {splt: x}}\n",
     ["unknown key 'splt' in data.forget", "did you mean 'split'"]),
    ("method: ga\ntrain: {max_steps: lots}\n", ["train.max_steps: expected an integer"]),
    ("method: {name: npo_gdrr}\n", ["unknown method name 'npo_gdrr'", "valid:"]),
])
def test_bad_recipes(tmp_path, capsys, monkeypatch, body, needles):
    code, _, err = run_cli(main, ["run", recipe(tmp_path, body), "--dry-run"], capsys,
                           monkeypatch)
    one_error_line(code, err, *needles)


def test_set_on_missing_key(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(main, ["run", "recipes/tiny.yaml", "--dry-run", "--set",
                                  "eval.batchsize=3"], capsys, monkeypatch)
    one_error_line(code, err, "--set eval.batchsize=3", "did you mean 'batch_size'")


def test_dry_run_prints_resolved_recipe_with_overrides(capsys, monkeypatch):
    code, out, _ = run_cli(main, ["run", "recipes/tiny.yaml", "--dry-run", "--set",
                                  "train.learning_rate=5e-4"], capsys, monkeypatch)
    assert code == 0 and "learning_rate: 0.0005" in out and "name: ga" in out


def test_missing_split_field_and_model(tmp_path, world, capsys, monkeypatch):
    base = f"method: ga\nmodel: {{target: {world}/nomodel}}\ndata: {{source: {world}}}\n" \
           f"output_dir: {tmp_path}/out\n"
    code, _, err = run_cli(main, ["run", recipe(tmp_path, base), "--no-eval"], capsys,
                           monkeypatch)
    one_error_line(code, err, "model.target: model path does not exist")
    # every problem the preflight finds comes at once, one line each, before anything runs
    code, _, err = run_cli(main, ["run", recipe(tmp_path, base), "--set", "data.forget.split=gone",
                                  "--set", "data.retain.field=body"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert all(line.startswith("unlearn: error: ") for line in lines), err
    assert len(lines) == 4, err
    assert "model path does not exist" in lines[0]
    assert "no split 'gone'" in lines[1] and "splits:" in lines[1]
    assert "lacks field(s) body" in lines[2]
    assert "privleak needs a retrain reference" in lines[3] and "model.retrain" in lines[3]
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_refuses_non_empty_output_dir(tmp_path, capsys, monkeypatch):
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, _, err = run_cli(main, ["world", str(out), "--size", "tiny"], capsys, monkeypatch)
    one_error_line(code, err, "not empty", "--overwrite")
    assert (out / "keep.txt").read_text() == "precious"


def test_every_command_has_help():
    from click.testing import CliRunner

    from detox.cli import cli as detox_cli
    from unlearn.cli import cli as unlearn_cli

    for group in (unlearn_cli, detox_cli):
        runner = CliRunner()
        assert runner.invoke(group, ["--help"]).exit_code == 0
        for name in group.list_commands(None):
            result = runner.invoke(group, [name, "--help"])
            assert result.exit_code == 0, (name, result.output)
            assert "Usage:" in result.output


def test_console_script_prints_no_traceback(tmp_path):
    exe = shutil.which("unlearn") or f"{sys.executable} -m unlearn"
    proc = subprocess.run(f"{exe} run {tmp_path}/absent.yaml", shell=True, capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("unlearn: error: recipe file not found")
