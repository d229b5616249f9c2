"""Output directories: never clobber a user's earlier results by accident."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lethe.errors import LetheError


def nearest_existing(path: str | Path) -> Path:
    """`path` itself if it exists, else its closest existing ancestor (what mkdir would need
    to write into)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable_problem(path: str | Path, what: str) -> str | None:
    """Why `path` (a directory to create or fill) could not be written, or None."""
    path = Path(path)
    base = nearest_existing(path)
    if not base.is_dir():
        return f"{what} {path} cannot be created: {base} is a file; choose another path"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"{what} {path} is not writable (no write permission on {base}); choose " \
               f"another path or fix the permissions"
    return None


def output_dir_problem(path: str | Path, *, overwrite: bool = False, resume: bool = False,
                       what: str = "output directory") -> str | None:
    """The one-line reason `prepare_output_dir` would refuse `path`, or None (creates nothing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{what} {path} exists and is a file; choose another path"
    if path.is_dir() and any(path.iterdir()) and not (overwrite or resume):
        return (f"{what} {path} exists and is not empty; pass --overwrite to replace "
                f"its results or choose another path")
    return writable_problem(path, what)


def prepare_output_dir(path: str | Path, *, overwrite: bool = False, resume: bool = False,
                       what: str = "output directory") -> Path:
    """Create `path`, refusing an existing non-empty directory unless `overwrite` or `resume`.

    With `overwrite` the old contents are left in place and files are replaced as they are
    rewritten (each atomically), so a crash midway still leaves readable results; `resume`
    means the caller will continue from what is there.
    """
    problem = output_dir_problem(path, overwrite=overwrite, resume=resume, what=what)
    if problem:
        raise LetheError(problem)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def replace_dir(tmp: str | Path, out: str | Path) -> Path:
    """Move the finished directory `tmp` to `out` by rename, so a reader (`unlearn eval` of a
    checkpoint being saved, a resumed run) never sees it half-written; an old `out` is moved
    aside first and deleted only after the new one is in place."""
    tmp, out = Path(tmp), Path(out)
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def write_dir_atomically(out: Path, write) -> Path:
    """`write(tmp_dir)`, then swap tmp_dir into `out` (an old `out` is removed only after)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    return replace_dir(tmp, out)
