"""A child process that holds an output's lock, for the one-writer tests (no fixtures here)."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Takes the lock with the real primitive, says so, then holds it until stdin closes.
HOLD = ("import sys\n"
        "from lethe.locks import output_lock\n"
        "with output_lock(sys.argv[1], enabled=True):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.read()\n")


def child_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1",
                TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")


@contextlib.contextmanager
def held_by_child(output):
    """Yield a running child process that holds the lock of `output`; it exits on leaving."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], cwd=ROOT,
                            env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


def sigkill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
