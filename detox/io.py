"""JSON Lines in and out of `detox rewrite` / `detox eval`: validation, streaming, resume.

Input: one JSON object per line with `id` (string or integer), `text` (string) and optionally
`context` (a string or a list of strings: earlier dialogue turns); other fields are carried
through to the output. Blank lines are ignored.

The whole input is validated first in one streaming pass (only the ids are kept, to catch
duplicates), so bad lines are reported with their line numbers before any generation starts;
a second streaming pass feeds the rewriter. Standard input is spooled to a temporary file so it
can be read twice with flat memory.

Output lines are appended one batch at a time, then flushed and fsync'ed, so a run killed at
any moment (even SIGKILL) keeps every finished batch. The only damage a kill can do is a torn
last line; `recover_output` finds it and truncates it away before a resumed run appends.
Readers (`detox eval`) take `complete_prefix` first and read only whole lines, so a file that
is still being written can be scored as it stands. Writers hold `lethe.locks.output_lock` on
the output, so two runs never append to one file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

from lethe.errors import LetheError

log = logging.getLogger(__name__)

MAX_REPORTED = 10  # bad lines named in one error message


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line number in the input
    id: str | int
    text: str
    context: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)  # other fields, carried through

    @property
    def key(self) -> str:
        return id_key(self.id)


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def id_key(value) -> str:
    """Ids compare by their JSON spelling: 7 and "7" are different ids."""
    return json.dumps(value, ensure_ascii=False)


def parse_line(raw: bytes, line: int, required: tuple[str, ...] = ("id", "text"),
               string_fields: tuple[str, ...] = ()) -> Record | BadLine | None:
    """One input line -> Record, BadLine (with the reason), or None for a blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return BadLine(line, f"not UTF-8 (byte {err.start}); save the file as UTF-8")
    if line == 1:
        text = text.lstrip("\ufeff")  # a UTF-8 byte-order mark
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return BadLine(line, f"invalid JSON ({err.msg} at column {err.colno})")
    if not isinstance(obj, dict):
        return BadLine(line, f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        return BadLine(line, f"missing {', '.join(repr(k) for k in missing)}")
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return BadLine(line, f"'id' must be a string or an integer, got {_kind(rid)}")
    for name in ("text",) + tuple(string_fields):
        if name in obj and not isinstance(obj[name], str):
            return BadLine(line, f"'{name}' must be a string, got {_kind(obj[name])}")
    context = obj.get("context")
    if context is None:
        context = ()
    elif isinstance(context, str):
        context = (context,) if context.strip() else ()
    elif isinstance(context, list) and all(isinstance(c, str) for c in context):
        context = tuple(context)
    else:
        return BadLine(line, f"'context' must be a string or a list of strings, got "
                             f"{_kind(context)}")
    extra = {k: v for k, v in obj.items() if k not in ("id", "text", "context")}
    return Record(line, rid, obj.get("text", ""), context, extra)


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _lines(path: Path, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every line; with `limit`, only the lines that start before byte
    `limit` (a file still being appended to is read as it was when `limit` was taken)."""
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if limit is not None and offset >= limit:
                return
            offset += len(raw)
            yield number, raw


def complete_prefix(path: Path, chunk: int = 1 << 16) -> tuple[int, int]:
    """(bytes of `path` that hold whole records, bytes of an incomplete last line).

    A writer appends whole lines, but a reader can catch a write halfway. A last line without
    its newline is incomplete unless it parses as a JSON object (a hand-written file whose
    last line has no newline).
    """
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        pos, tail = size, b""
        while pos > 0 and b"\n" not in tail:  # read backwards to the last newline
            step = min(chunk, pos)
            pos -= step
            fh.seek(pos)
            tail = fh.read(step) + tail
    last = tail[tail.rfind(b"\n") + 1:] if b"\n" in tail else tail
    if not last.strip():
        return size, 0
    try:
        if isinstance(json.loads(last), dict):
            return size, 0
    except ValueError:  # also UnicodeDecodeError: a write cut inside a character
        pass
    return size - len(last), len(last)


@dataclass
class Scan:
    """What one validation pass over an input found."""

    valid: int = 0
    bad: list[BadLine] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def message(self, source: str) -> str:
        shown = "; ".join(map(str, self.bad[:MAX_REPORTED]))
        more = f"; and {len(self.bad) - MAX_REPORTED} more" if len(self.bad) > MAX_REPORTED else ""
        return f"{source}: {len(self.bad)} bad line(s): {shown}{more}"


def scan(path: Path, required: tuple[str, ...] = ("id", "text"),
         string_fields: tuple[str, ...] = (), limit: int | None = None) -> Scan:
    """Validate every line (up to byte `limit`), streaming; duplicates (by id) after the first
    are bad lines."""
    result = Scan()
    for number, raw in _lines(path, limit):
        rec = parse_line(raw, number, required, string_fields)
        if rec is None:
            continue
        if isinstance(rec, Record) and rec.key in result.keys:
            rec = BadLine(number, f"duplicate id {rec.key}")
        if isinstance(rec, BadLine):
            result.bad.append(rec)
            continue
        result.keys.add(rec.key)
        result.valid += 1
    return result


def records(path: Path, required: tuple[str, ...] = ("id", "text"),
            string_fields: tuple[str, ...] = (), limit: int | None = None) -> Iterator[Record]:
    """The valid records in file order (bad and duplicate lines skipped; up to byte `limit`),
    streaming."""
    seen: set[str] = set()
    for number, raw in _lines(path, limit):
        rec = parse_line(raw, number, required, string_fields)
        if isinstance(rec, Record) and rec.key not in seen:
            seen.add(rec.key)
            yield rec


@contextlib.contextmanager
def input_path(spec: str, stdin: IO[bytes] | None = None) -> Iterator[Path]:
    """A readable path for `spec`; `-` spools standard input to a temporary file first."""
    if spec != "-":
        path = Path(spec)
        if not path.is_file():
            raise LetheError(f"input file not found: {spec} (give a .jsonl file, or - for "
                             f"standard input)")
        yield path
        return
    source = stdin if stdin is not None else sys.stdin.buffer
    with tempfile.NamedTemporaryFile(prefix="detox-stdin-", suffix=".jsonl") as tmp:
        shutil.copyfileobj(source, tmp, length=1 << 20)
        tmp.flush()
        yield Path(tmp.name)


# ---------------------------------------------------------------------------------------------
# output


@dataclass
class Recovered:
    keys: list[str] = field(default_factory=list)  # ids already written, in file order
    dropped_bytes: int = 0  # size of the torn tail that was truncated away


def recover_output(path: Path, *, dry: bool = False) -> Recovered:
    """Read an earlier run's output; truncate a torn or unparsable *last* line.

    A bad line followed by good ones is not crash damage (the writer only appends whole
    batches), so it is refused rather than silently dropped.
    """
    out = Recovered()
    good_end = 0  # byte offset just past the last good line
    bad_at: int | None = None  # line number of a bad line seen after the last good one
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            offset += len(raw)
            if not raw.strip():
                if bad_at is None:
                    good_end = offset
                continue
            rec = None
            if raw.endswith(b"\n"):
                rec = parse_line(raw, number, ("id", "text", "rewrite"), ("rewrite",))
            if isinstance(rec, Record):
                if bad_at is not None:
                    raise LetheError(f"output {path}: line {bad_at} is damaged but later lines "
                                     f"are not, so it was not written by an interrupted run; "
                                     f"fix it, pass --overwrite, or choose another -o")
                out.keys.append(rec.key)
                good_end = offset
            elif bad_at is None:
                bad_at = number
    size = offset
    if size > good_end:
        out.dropped_bytes = size - good_end
        if not dry:
            log.warning("output %s: dropping a torn last line (%d bytes) left by an interrupted "
                        "run", path, out.dropped_bytes)
            with path.open("r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
    return out


class JsonlWriter:
    """Appends batches of JSON objects; each batch is one write, then flush (+ fsync on files)."""

    def __init__(self, target: str | Path, *, stdout: IO[bytes] | None = None):
        self.to_stdout = str(target) == "-"
        if self.to_stdout:
            self.fh = stdout if stdout is not None else sys.stdout.buffer
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(target, "ab")

    def write(self, objs: Iterable[dict]) -> None:
        data = b"".join(json.dumps(o, ensure_ascii=False).encode("utf-8") + b"\n" for o in objs)
        if not data:
            return
        self.fh.write(data)
        self.fh.flush()
        if not self.to_stdout:
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        if not self.to_stdout:
            self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
