"""`unlearn prepare` on the tiny world: tokenizer + target/retrain checkpoints that load."""

import pytest
import torch

from lethe.loading import load_model, load_tokenizer
from unlearn.prepare import prepare, read_texts, train_tokenizer
from unlearn.recipe import load_unlearn_recipe


def test_tokenizer_round_trips_unseen_text():
    tok = train_tokenizer(["Alia Brenholt was born in Vessmark."] * 5, vocab_size=300)
    ids = tok("Zyx qü 1872!")["input_ids"]
    assert ids[0] == tok.bos_token_id  # <s> prepended, as in training
    assert tok.decode(ids, skip_special_tokens=True) == "Zyx qü 1872!"  # byte-level: no <unk>


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    recipe = load_unlearn_recipe("recipes/tiny.yaml", [
        f"world.dir={root}/world", f"prepare.out_dir={root}/models", f"data.source={root}/world",
        "prepare.train.max_steps=40", "prepare.train.logging_steps=5"])
    return root, recipe, prepare(recipe)


def test_prepare_writes_loadable_checkpoints(prepared):
    root, recipe, summary = prepared
    assert (root / "world" / "world.json").is_file()
    for name in ("target", "retrain"):
        path = root / "models" / name
        assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
        model, tok = load_model(str(path)), load_tokenizer(str(path))
        assert model.config.model_type == "llama" and len(tok) == model.config.vocab_size
    assert summary["models"]["target"]["train_docs"] > summary["models"]["retrain"]["train_docs"]


def test_target_fits_forget_better_than_retrain(prepared):
    """Only the target saw the forget split, so it assigns it a lower loss."""
    root, recipe, _ = prepared
    from unlearn.data import LMCollator, tokenize_texts
    from unlearn.methods.losses import nll

    forget = read_texts(str(root / "world"), "raw", "forget")
    losses = {}
    for name in ("target", "retrain"):
        model, tok = load_model(str(root / "models" / name)), load_tokenizer(str(root / "models" /
                                                                                  name))
        batch = LMCollator(tok.pad_token_id)(tokenize_texts(tok, forget, 128))
        with torch.no_grad():
            losses[name] = nll(model, batch).item()
    assert losses["target"] < losses["retrain"] - 0.2


def test_second_prepare_skips_existing(prepared):
    _, recipe, _ = prepared
    assert prepare(recipe)["skipped"] is True
