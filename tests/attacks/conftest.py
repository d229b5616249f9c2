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
from tests.helpers import THREADS  # noqa: E402
from edit_toy import facts, lethe_cache, tok  # noqa: E402,F401  (shared fixtures)


@pytest.fixture(scope="session")
def trained(tok):
    """A 4-layer Llama trained (~5 s) until it answers every toy fact greedily."""
    torch.set_num_threads(THREADS)
    return edit_toy.train(edit_toy.llama(tok), tok, steps=150)


def forget_answer(model, tok, answer: str, donor: str = "~"):
    """A copy of `model` whose unembedding row of `answer`'s (single) token is that of a token
    never seen in training, so p(answer) collapses while every other prediction stays."""
    import copy

    (answer_id,) = tok(" " + answer, add_special_tokens=False)["input_ids"]
    donor_id = tok.convert_tokens_to_ids(donor)
    edited = copy.deepcopy(model)
    with torch.no_grad():
        w = edited.get_output_embeddings().weight
        w[answer_id] = w[donor_id]
    return edited


@pytest.fixture(scope="session")
def forgot_vessmark(trained, tok):
    return forget_answer(trained, tok, "Vessmark")


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, trained, forgot_vessmark, tok, facts):
    """(world dir, base checkpoint, edited checkpoint) on disk."""
    root = tmp_path_factory.mktemp("attack_cli")
    for name, model in (("base", trained), ("edited", forgot_vessmark)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    world = edit_toy.write_facts(root / "world", *facts)
    return world, root / "base", root / "edited"
