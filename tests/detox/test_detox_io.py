"""detox.io: validation with line numbers, torn-line recovery, appending writer, stdin spool."""

import io as pyio
import json

import pytest

from detox import io
from lethe.errors import LetheError


def write_lines(path, lines):
    path.write_bytes(b"".join(x if isinstance(x, bytes) else x.encode() + b"\n" for x in lines))
    return path


def test_scan_reports_each_bad_line_with_its_number(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [
        '{"id": 1, "text": "fine"}',                     # 1 ok
        '{"id": 2, "text": "broken"',                    # 2 invalid JSON
        '{"id": 3}',                                     # 3 missing text
        '{"text": "no id"}',                             # 4 missing id
        '{"id": 5, "text": 42}',                         # 5 non-string text
        '{"id": 1, "text": "again"}',                    # 6 duplicate id
        b'{"id": 7, "text": "caf\xe9"}\n',               # 7 latin-1 byte, not UTF-8
        '',                                              # 8 blank: ignored
        '[1, 2]',                                        # 9 not an object
        '{"id": true, "text": "x"}',                     # 10 bad id type
        '{"id": 11, "text": "x", "context": [1]}',       # 11 bad context
        '{"id": "1", "text": "a string id differs from 1", "context": "earlier turn"}',  # 12 ok
    ])
    found = io.scan(path)
    assert found.valid == 2
    got = {b.line: b.reason for b in found.bad}
    assert sorted(got) == [2, 3, 4, 5, 6, 7, 9, 10, 11]
    assert got[2].startswith("invalid JSON")
    assert got[3] == "missing 'text'" and got[4] == "missing 'id'"
    assert "'text' must be a string, got int" in got[5]
    assert got[6] == "duplicate id 1"
    assert got[7].startswith("not UTF-8")
    assert "expected a JSON object" in got[9]
    assert "'id' must be a string or an integer" in got[10]
    assert "'context'" in got[11]
    msg = found.message("in.jsonl")
    assert msg.startswith("in.jsonl: 9 bad line(s): line 2: invalid JSON") and "\n" not in msg
    recs = list(io.records(path))
    assert [(r.line, r.id, r.context) for r in recs] == [(1, 1, ()), (12, "1", ("earlier turn",))]


def test_recover_output_truncates_a_torn_last_line(tmp_path):
    good = [json.dumps({"id": i, "text": "t", "rewrite": "r"}) for i in range(3)]
    path = tmp_path / "out.jsonl"
    torn = '{"id": 3, "text": "t", "rew'
    path.write_text("\n".join(good) + "\n" + torn)
    rec = io.recover_output(path)
    assert rec.keys == ["0", "1", "2"]
    assert rec.dropped_bytes == len(torn)
    assert path.read_bytes() == ("\n".join(good) + "\n").encode()
    # a complete last line torn into garbage (e.g. zero bytes after a power cut) is dropped too
    with path.open("ab") as fh:
        fh.write(b"\x00\x00\x00\n")
    assert io.recover_output(path).keys == ["0", "1", "2"]
    assert path.read_bytes() == ("\n".join(good) + "\n").encode()
    # a last line that parses but was never finished with a newline is redone as well
    with path.open("ab") as fh:
        fh.write(json.dumps({"id": 9, "text": "t", "rewrite": "r"}).encode())
    assert io.recover_output(path).keys == ["0", "1", "2"]


def test_recover_output_refuses_damage_in_the_middle(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": 0, "text": "t", "rewrite": "r"}\nnot json\n'
                    '{"id": 1, "text": "t", "rewrite": "r"}\n')
    before = path.read_bytes()
    with pytest.raises(LetheError, match="line 2 is damaged"):
        io.recover_output(path)
    assert path.read_bytes() == before  # nothing dropped


def test_writer_appends_whole_lines_and_records_keep_extra_fields(tmp_path):
    path = tmp_path / "o.jsonl"
    with io.JsonlWriter(path) as w:
        w.write([{"id": 1, "rewrite": "é"}])
        w.write([])
        w.write([{"id": 2, "rewrite": "b"}, {"id": 3, "rewrite": "c"}])
    assert path.read_text(encoding="utf-8").splitlines() == [
        '{"id": 1, "rewrite": "é"}', '{"id": 2, "rewrite": "b"}', '{"id": 3, "rewrite": "c"}']
    rec = io.parse_line(b'{"id": 1, "text": "x", "references": ["y"]}', 1)
    assert rec.extra == {"references": ["y"]}


def test_stdin_is_spooled_to_a_rereadable_file():
    data = b'{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n'
    with io.input_path("-", stdin=pyio.BytesIO(data)) as path:
        assert io.scan(path).valid == 2
        assert [r.text for r in io.records(path)] == ["a", "b"]
    assert not path.exists()
    with pytest.raises(LetheError, match="input file not found"):
        with io.input_path("/nonexistent/x.jsonl"):
            pass


def test_batched():
    assert list(io.batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
