"""One writer per output: an exclusive, advisory lock beside every file or directory written.

Two runs writing the same output (a scheduler retry, a second terminal, a job array with a
shared `-o`) would interleave their records or their checkpoints. Every command that writes
or resumes an output therefore holds `output_lock(path)` from before it reads anything for
resume until its last write; a second writer fails at once with one line naming the holder.

The lock is `fcntl.flock` on a small file *beside* the output (`runs/.demo.lock` for
`runs/demo`, `.out.jsonl.lock` for `out.jsonl`):
- flock is dropped by the kernel when the holder's last descriptor closes, so a SIGKILLed or
  OOM-killed run never leaves a stale lock behind (nothing to clean up by hand);
- beside, not inside: it never makes an output directory "non-empty", never shows up in
  listings that resume or evaluation read, and survives commands that swap a whole
  directory into place (`unlearn world --overwrite`);
- the holder writes its pid, host, start time and command line into the lock file, so the
  refused writer can say who holds it.
We use flock directly rather than the `filelock` package: its lock-file handling differs
between releases (3.x keeps the file, 4.x may truncate or unlink it), and the holder's
details must live in the locked file and survive a refused writer's attempt, which takes
opening it without truncation. On platforms without `fcntl` (Windows) outputs are not locked.

Under a distributed launcher only rank 0 takes locks (`lethe.cli.is_main_process`): the
other ranks write only what rank 0's collective saves require, inside the locked output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lethe.errors import LetheError

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@dataclass
class _Held:
    fd: int
    inode: int
    count: int  # nested takes of the same output by this process
    made: tuple[Path, ...] = ()  # parent directories the lock created (deepest first)


_HELD: dict[Path, _Held] = {}  # lock file -> this process's hold on it


def lock_path(output: str | Path) -> Path:
    """Where the lock of `output` lives: `.NAME.lock` beside it (symlinks resolved)."""
    out = Path(output).resolve()
    return out.parent / f".{out.name or 'root'}.lock"


def _holder_text() -> bytes:
    command = " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else ""
    return (json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "command": command[:120]}) + "\n").encode()


def _describe_holder(fd: int) -> str:
    """The holder's details from the lock file (it writes them right after locking)."""
    for _ in range(20):  # the holder may be between flock() and its write
        raw = os.pread(fd, 4096, 0)
        if raw.strip():
            break
        time.sleep(0.05)
    try:
        info = json.loads(raw)
        text = f"pid {info['pid']} on host {info['host']}, since {info['since']}"
        return text + (f": {info['command']}" if info.get("command") else "")
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def _open_locked(lock: Path, output: Path, what: str) -> _Held | None:
    """Open and flock `lock` without blocking; None where the filesystem cannot lock."""
    made = tuple(p for p in (lock.parent, *lock.parent.parents) if not p.exists())
    for _ in range(100):  # retried only while other writers unlink lock files under us
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            continue  # a finishing holder removed the empty parent it had made: make it again
        except OSError as err:
            # Nothing can be written where the lock cannot be (a parent is a file, a read-only
            # place): the command's preflight reports the output with every other problem.
            # The one place a lock fails and the output does not, a writable directory in an
            # unwritable parent, runs unguarded, with this warning.
            for parent in made:
                with contextlib.suppress(OSError):
                    os.rmdir(parent)
            log.warning("cannot create the lock file %s (%s); writing %s without a lock", lock,
                        err.strerror, output)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _describe_holder(fd)
                os.close(fd)
                raise LetheError(f"{what} {output} is being written by another process "
                                 f"({holder}); wait for it to finish or choose another "
                                 f"{what}") from None
            os.close(fd)  # e.g. ENOLCK on a filesystem without locks: run unguarded
            log.warning("cannot lock %s (%s); writing %s without a lock", lock,
                        err.strerror, output)
            return None
        inode = os.fstat(fd).st_ino
        try:
            same = os.stat(lock).st_ino == inode
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder unlinked it after we opened it: take the new one
    else:
        raise LetheError(f"could not take the lock {lock} of {what} {output}; try again")
    os.ftruncate(fd, 0)
    os.pwrite(fd, _holder_text(), 0)
    return _Held(fd, inode, 1, made)


def _release(lock: Path, held: _Held) -> None:
    # Unlink before unlocking: a writer that opened this inode meanwhile sees it is no longer
    # the file at `lock` (the inode check above) and takes a fresh one.
    with contextlib.suppress(OSError):
        if os.stat(lock).st_ino == held.inode:
            os.unlink(lock)
    os.close(held.fd)
    for parent in held.made:  # a command that failed before writing leaves no empty dirs
        try:
            os.rmdir(parent)
        except OSError:  # not empty: the command wrote there, or another writer did
            break


@contextlib.contextmanager
def output_lock(output: str | Path, *, what: str = "output",
                enabled: bool | None = None) -> Iterator[Path | None]:
    """Hold the exclusive lock of `output` (a file or a directory) for the `with` block.

    Raises LetheError at once, naming the holder, if another process holds it. The same
    process may take it again (nested). `enabled=None` means "on rank 0 only".
    Yields the lock file's path (None when not locked).
    """
    if enabled is None:
        from lethe.cli import is_main_process

        enabled = is_main_process()
    if not enabled or fcntl is None:
        yield None
        return
    output = Path(output)
    lock = lock_path(output)
    held = _HELD.get(lock)
    if held is not None:
        held.count += 1
    else:
        held = _open_locked(lock, output, what)
        if held is None:
            yield None
            return
        _HELD[lock] = held
    try:
        yield lock
    finally:
        held.count -= 1
        if held.count == 0:
            del _HELD[lock]
            _release(lock, held)


def lock_output(output: str | Path, what: str = "output") -> None:
    """In a click command: hold `output`'s lock until the command returns (or fails)."""
    import click

    click.get_current_context().with_resource(output_lock(output, what=what))
