"""Fixtures of the attack tests; the toy fact world lives in tests/rome/edit_toy.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "rome"))

import pytest  # noqa: E402
import torch  # noqa: E402

import edit_toy  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def lethe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LETHE_CACHE", str(tmp_path / "lethe-cache"))


@pytest.fixture(scope="session")
def tok():
    return edit_toy.tokenizer()


@pytest.fixture(scope="session")
def facts():
    return edit_toy.make_facts()


@pytest.fixture(scope="session")
def trained(tok):
    """A 4-layer Llama trained (~5 s) until it answers every toy fact greedily."""
    torch.set_num_threads(1)
    return edit_toy.train(edit_toy.llama(tok), tok, steps=150)
