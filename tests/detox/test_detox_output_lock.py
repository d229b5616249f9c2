"""One writer per `detox rewrite` output and per `detox eval` report; readers see whole lines."""

import json
import subprocess
import sys
import time

from click.testing import CliRunner

from detox.cli import cli
from lethe.errors import LetheError
from lethe.locks import lock_path
from tests.lock_helpers import ROOT, child_env, held_by_child, sigkill

EXAMPLES = ROOT / "examples" / "input.jsonl"


def rewrite_cmd(out, args, source="-"):
    return [sys.executable, "-m", "detox", "rewrite", str(source), "-o", str(out), *args]


def wait_for_holder(out, proc, seconds=600):
    """Until `proc` holds the lock of `out` (its pid is in the lock file)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(lock_path(out).read_text())["pid"] == proc.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the first writer never took the lock (exit code {proc.poll()})")


def single_run(tmp_path, args):
    ref = tmp_path / "single.jsonl"
    res = CliRunner().invoke(cli, ["rewrite", str(EXAMPLES), "-o", str(ref), *args])
    assert res.exit_code == 0, res.output
    return ref.read_bytes()


def test_two_writers_on_one_output_one_proceeds(tmp_path, tiny_recipe_args, index_cache):
    """Two real `detox rewrite` processes on one -o: the second exits 2 at once naming the
    first, which finishes alone; the output equals a single run's (every id once)."""
    out = tmp_path / "out.jsonl"
    env = child_env() | {"LETHE_CACHE": str(index_cache)}
    # The first reads its input from stdin, so it holds the lock (taken before any input is
    # read) for exactly as long as the test keeps stdin open.
    first = subprocess.Popen(rewrite_cmd(out, tiny_recipe_args), cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        wait_for_holder(out, first)
        second = subprocess.run(rewrite_cmd(out, tiny_recipe_args, EXAMPLES), cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        # The first cannot finish before the test closes its stdin, so the second returning
        # while the first still runs means it was refused without waiting for the lock (a
        # wall-time bound here failed under load: imports alone took 87 s at load average 8).
        second_waited = first.poll() is not None
        _, err = first.communicate(EXAMPLES.read_bytes(), timeout=600)
    finally:
        if first.poll() is None:
            sigkill(first)
    assert second.returncode == 2 and not second_waited, second.stderr
    assert second.stderr.startswith(f"detox: error: output {out} is being written by another "
                                    f"process (pid {first.pid} on host ")
    assert second.stderr.count("\n") == 1  # one line, no traceback
    assert first.returncode == 0 and b"15 line(s) rewritten" in err
    assert out.read_bytes() == single_run(tmp_path, tiny_recipe_args)
    assert not lock_path(out).exists()


def test_a_sigkilled_writer_does_not_block_the_next(tmp_path, tiny_recipe_args, index_cache):
    out = tmp_path / "out.jsonl"
    holder = subprocess.Popen(rewrite_cmd(out, tiny_recipe_args), cwd=ROOT, env=child_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for_holder(out, holder)
    finally:
        sigkill(holder)
    res = CliRunner().invoke(cli, ["rewrite", str(EXAMPLES), "-o", str(out), *tiny_recipe_args])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == single_run(tmp_path, tiny_recipe_args)


def cheap(tiny_llama):
    return ["--metrics", "sim", "--set", "scorers.sim.model=hashing:4096",
            "--set", f"scorers.fl.model={tiny_llama}"]


def test_eval_report_dir_is_one_writer_and_reads_whole_lines(tmp_path, tiny_llama):
    rewrites = tmp_path / "out.jsonl"
    whole = ('{"id": 0, "text": "alpha beta", "rewrite": "alpha beta"}\n'
             '{"id": 1, "text": "alpha beta gamma delta", "rewrite": "alpha beta"}\n')
    rewrites.write_text(whole + '{"id": 2, "text": "x y", "rewri')  # a writer mid-line
    report = tmp_path / "report"
    with held_by_child(report) as holder:
        res = CliRunner().invoke(cli, ["eval", str(rewrites), "--report-dir", str(report),
                                       *cheap(tiny_llama)])
        assert isinstance(res.exception, LetheError)
        assert f"report directory {report} is being written by another process (pid " \
               f"{holder.pid} " in str(res.exception)
        assert not report.exists()
    res = CliRunner().invoke(cli, ["eval", str(rewrites), "--report-dir", str(report),
                                   *cheap(tiny_llama)])
    assert res.exit_code == 0, res.output
    results = json.loads((report / "results.json").read_text())
    # hashing SIM (cosine of word counts): identical = 1, 2 of 4 words kept = 2 / sqrt(2 * 4);
    # the mean over the 2 whole lines only
    assert results["n"] == 2
    assert abs(results["metrics"]["sim"] - (1 + 2 / 8 ** 0.5) / 2) < 1e-6
    assert "ignoring the incomplete last line" in res.stderr
    # a last line without its newline that is a whole record counts (a hand-written file)
    rewrites.write_text(whole + '{"id": 2, "text": "x y", "rewrite": "x y"}')
    res = CliRunner().invoke(cli, ["eval", str(rewrites), "--report-dir", str(report),
                                   *cheap(tiny_llama)])
    assert res.exit_code == 0, res.output
    assert json.loads((report / "results.json").read_text())["n"] == 3
    assert "incomplete" not in res.stderr
