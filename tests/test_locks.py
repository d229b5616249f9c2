"""`lethe.locks.output_lock`: one writer per output; no stale lock after a SIGKILL."""

import json
import os
import socket
import time

import pytest

from lethe.errors import LetheError
from lethe.locks import lock_path, output_lock
from lethe.outputs import prepare_output_dir, replace_dir
from lethe.trainer import last_complete_checkpoint, resume_checkpoint
from tests.lock_helpers import held_by_child, sigkill


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "out.jsonl"
    with held_by_child(out) as holder:
        start = time.monotonic()
        with pytest.raises(LetheError) as err:
            with output_lock(out, what="output", enabled=True):
                pytest.fail("the lock was granted twice")
        assert time.monotonic() - start < 2
        msg = str(err.value)
        assert f"output {out} is being written by another process (pid {holder.pid} on host " \
               f"{socket.gethostname()}, since " in msg
        assert msg.endswith("wait for it to finish or choose another output")
        assert "\n" not in msg
    assert not out.exists()  # the refused writer created nothing


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    with held_by_child(out) as holder:
        assert json.loads(lock_path(out).read_text())["pid"] == holder.pid
        sigkill(holder)
        assert lock_path(out).exists()  # the file stays behind, but unlocked
        with output_lock(out, enabled=True) as lock:
            assert lock == lock_path(out)
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock_path(out).exists()


def test_lock_sits_beside_the_output_and_is_reentrant(tmp_path):
    out = tmp_path / "d"
    with output_lock(out, enabled=True) as lock:
        assert lock == tmp_path / ".d.lock" and not out.exists()
        prepare_output_dir(out)  # the lock does not make the directory "non-empty"
        assert list(out.iterdir()) == []
        with output_lock(out, enabled=True):  # the same process may take it again
            pass
        assert lock.exists()  # still held by the outer block
    assert not lock.exists()
    prepare_output_dir(out)  # still empty after release


def test_a_lock_leaves_no_directories_it_made(tmp_path):
    out = tmp_path / "runs" / "eval" / "model"
    with output_lock(out, enabled=True) as lock:
        assert lock.parent.is_dir()
    assert not (tmp_path / "runs").exists()  # nothing written: the parents it made are gone
    with output_lock(out, enabled=True):
        (tmp_path / "runs" / "eval" / "kept.txt").write_text("x")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["eval"]


def test_other_ranks_take_no_lock(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with held_by_child(out):
        monkeypatch.setenv("RANK", "1")
        with output_lock(out) as lock:  # rank 1: no lock, no refusal
            assert lock is None
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(LetheError, match="being written by another process"):
            with output_lock(out):
                pass


def test_resume_skips_a_checkpoint_killed_while_saving(tmp_path):
    for step, complete in ((2, True), (9, True), (10, False)):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_bytes(b"x")
        if complete:
            (ckpt / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-11.tmp").mkdir()  # not a checkpoint name
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-9")
    assert resume_checkpoint(tmp_path, True) == str(tmp_path / "checkpoint-9")
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_replace_dir_swaps_a_finished_directory_in(tmp_path):
    out, tmp = tmp_path / "model", tmp_path / "model.saving"
    out.mkdir()
    (out / "old.bin").write_text("old")
    tmp.mkdir()
    (tmp / "new.bin").write_text("new")
    replace_dir(tmp, out)
    assert [p.name for p in out.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left aside
