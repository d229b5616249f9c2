"""Fixtures of the edit tests: the toy fact world of edit_toy.py (its shared fixtures: tok, facts
and a private covariance cache). tests/conftest.py pins torch to one thread for every test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

import edit_toy  # noqa: E402
from edit_toy import facts, lethe_cache, tok  # noqa: E402,F401  (shared fixtures)


@pytest.fixture(scope="session")
def corpus():
    return edit_toy.sentences() * 3
