"""DeepSpeed, checked once: every `train.deepspeed` value (unlearn run/prepare, detox train,
detox train-classifier, their preflights and dry runs) goes through `deepspeed_config`.

A value is a JSON file path or an inline mapping; a run started without a launcher gets a
one-process distributed environment so DeepSpeed does not look for MPI (TOOLCHAIN.md).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from lethe.errors import LetheError

SHIPPED_DEEPSPEED = "recipes/deepspeed/zero2.json, zero3.json, zero3_offload.json"


def deepspeed_config(spec) -> int:
    """Check a `train.deepspeed` value (a JSON file path or an inline mapping): it exists, is
    a JSON object, and its ZeRO stage is 0-3. Returns the stage."""
    if isinstance(spec, dict):
        cfg, name = spec, "the inline config"
    else:
        path = Path(str(spec))
        if not path.is_file():
            raise LetheError(f"config file not found: {path} (shipped configs: "
                             f"{SHIPPED_DEEPSPEED})")
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise LetheError(f"{path} is not valid JSON: {err}") from None
        name = str(path)
    if not isinstance(cfg, dict):
        raise LetheError(f"{name} must hold a JSON object, got {type(cfg).__name__}")
    zero = cfg.get("zero_optimization") or {}
    stage = zero.get("stage", 0) if isinstance(zero, dict) else None
    if isinstance(stage, bool) or stage not in (0, 1, 2, 3):
        raise LetheError(f"{name}: zero_optimization.stage is {stage!r}; use 0, 1, 2 or 3")
    return stage


def check_deepspeed(spec, where: str = "train.deepspeed") -> int:
    """`deepspeed_config(spec)` with `where` in front of its error. Returns the ZeRO stage."""
    try:
        return deepspeed_config(spec)
    except LetheError as err:
        raise LetheError(f"{where}: {err}") from None


def prepare_deepspeed(spec, where: str = "train.deepspeed") -> int:
    """Check `spec` and set up the distributed environment a trainer needs to use it."""
    stage = check_deepspeed(spec, where)
    ensure_distributed_env()
    return stage


def ensure_distributed_env() -> None:
    """Let a bare `python`/console-script run use DeepSpeed as a world of one process.

    Launchers (accelerate, torchrun, deepspeed) set RANK/WORLD_SIZE; without them DeepSpeed
    falls back to MPI discovery and fails on a missing mpi4py.
    """
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT",
                                                                          str(port)))
