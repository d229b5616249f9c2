"""Small shared helpers for tests (no fixtures with side effects at import)."""

import sys

import pytest


def run_cli(main, argv, capsys, monkeypatch):
    """Run a console entry point in-process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["prog", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
