"""Fixtures of the edit tests: the toy fact world of edit_toy.py, one CPU thread, and a private
covariance cache directory."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

import edit_toy  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run ~100x faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def lethe_cache(tmp_path, monkeypatch):
    path = tmp_path / "lethe-cache"
    monkeypatch.setenv("LETHE_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def tok():
    return edit_toy.tokenizer()


@pytest.fixture(scope="session")
def facts():
    return edit_toy.make_facts()


@pytest.fixture(scope="session")
def corpus():
    return edit_toy.sentences() * 3
