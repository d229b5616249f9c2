"""Small shared helpers for tests (no fixtures with side effects at import)."""

import os
import sys

import pytest

# The robustness sweep (scripts/check_robust.sh) reruns the suite under other thread counts and
# fixture seeds: a test whose pass depends on one machine's float path, or on one lucky draw of
# a trained fixture, fails there. Defaults reproduce the plain `pytest` run.
THREADS = int(os.environ.get("LETHE_TEST_THREADS", "1"))
SEED = int(os.environ.get("LETHE_TEST_SEED", "0"))


def fixture_seed(base: int) -> int:
    """The seed a fixture that trains or samples uses: `base` in a plain run, shifted by
    1000 * LETHE_TEST_SEED in the sweep (distinct bases stay distinct)."""
    return base + 1000 * SEED


def run_cli(main, argv, capsys, monkeypatch):
    """Run a console entry point in-process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["prog", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
