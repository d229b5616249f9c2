"""One writer per output, command by command: a held output is refused before anything is
read or written, and a SIGKILLed holder does not block the next run."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from detox.cli import cli as detox_cli
from lethe.errors import LetheError
from lethe.locks import lock_path
from tests.helpers import run_cli
from tests.lock_helpers import ROOT, child_env, held_by_child, sigkill
from unlearn.cli import cli as unlearn_cli
from unlearn.cli import main as unlearn_main

EXAMPLES = ROOT / "examples" / "input.jsonl"


def command_cases(tmp_path):
    """name -> (click group, argv, the output it must lock)."""
    rewrites = tmp_path / "rewrites.jsonl"
    rewrites.write_text('{"id": 1, "text": "you idiot", "rewrite": "you are wrong"}\n')
    d = tmp_path / "out"
    world, models = tmp_path / "world", tmp_path / "models"
    tiny = ["--set", f"world.dir={world}", "--set", f"prepare.out_dir={models}",
            "--set", f"data.source={world}"]
    return {
        "detox rewrite": (detox_cli, ["rewrite", str(EXAMPLES), "-o", str(d)], d),
        "detox eval": (detox_cli, ["eval", str(rewrites), "--report-dir", str(d)], d),
        "detox train": (detox_cli, ["train", "recipes/detox/rl_smollm2.yaml",
                                    "--set", f"output_dir={d}"], d),
        "detox train-classifier": (detox_cli, ["train-classifier", "recipes/detox/classifier.yaml",
                                               "--set", f"output_dir={d}"], d),
        "unlearn run": (unlearn_cli, ["run", "recipes/tiny.yaml", *tiny,
                                      "--set", f"output_dir={d}"], d),
        "unlearn prepare (world)": (unlearn_cli, ["prepare", "recipes/tiny.yaml", *tiny], world),
        "unlearn prepare (models)": (unlearn_cli, ["prepare", "recipes/tiny.yaml", *tiny],
                                     models),
        "unlearn world": (unlearn_cli, ["world", str(d), "--size", "tiny"], d),
        "unlearn eval": (unlearn_cli, ["eval", "no/model", "--data", "no/data", "--out", str(d)],
                         d),
        "unlearn attack": (unlearn_cli, ["attack", "no/model", "--data", "no/data",
                                         "--out", str(d)], d),
    }


COMMANDS = ["detox rewrite", "detox eval", "detox train", "detox train-classifier",
            "unlearn run", "unlearn prepare (world)", "unlearn prepare (models)",
            "unlearn world", "unlearn eval", "unlearn attack"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_writing_command_refuses_a_held_output(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipes are given relative to the repository
    cases = command_cases(tmp_path)
    assert sorted(cases) == sorted(COMMANDS)
    group, argv, locked = cases[name]
    with held_by_child(locked) as holder:
        res = CliRunner().invoke(group, argv)
    assert isinstance(res.exception, LetheError), res.output
    msg = str(res.exception)
    assert f"{locked} is being written by another process (pid {holder.pid} on host" in msg
    assert not locked.exists()  # refused before anything was written


def test_unlearn_run_refused_then_runs_after_the_holder_is_killed(tiny_prepared, tmp_path,
                                                                  capsys, monkeypatch):
    _, overrides = tiny_prepared
    out = tmp_path / "ga"
    argv = ["run", "recipes/tiny.yaml", "--no-eval",
            *[x for o in overrides + [f"output_dir={out}"] for x in ("--set", o)]]
    with held_by_child(out) as holder:
        proc = subprocess.run([sys.executable, "-m", "unlearn", *argv], cwd=ROOT,
                              env=child_env(), capture_output=True, text=True, timeout=600)
        # the holder keeps its lock until the test closes its stdin: refused without waiting
        assert holder.poll() is None
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"unlearn: error: output_dir {out} is being written by "
                                      f"another process (pid {holder.pid} on host ")
        assert proc.stderr.count("\n") == 1
        assert not out.exists()
        sigkill(holder)  # a killed holder: the kernel dropped its lock
    code, _, err = run_cli(unlearn_main, argv, capsys, monkeypatch)
    assert code == 0, err
    ledger = json.loads((out / "ledger.json").read_text())
    assert [r["label"] for r in ledger["requests"]] == ["forget"]
    assert (out / "model" / "model.safetensors").is_file()
    assert not (out / "model.saving").exists()  # saved beside, then renamed into place
    assert not lock_path(out).exists()  # released (and removed) when the command ended
