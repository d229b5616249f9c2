"""Supervised rewriting: loss on response tokens only, training lowers it, adapter loads."""

import csv
from pathlib import Path

import pytest
import torch

from detox_tiny import INSULTS, synthetic_rows
from lethe.recipe import build

from detox.train.recipe import DetoxTrainRecipe


def _pairs(path, n=40):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["toxic", "neutral1"])
        for text, label in synthetic_rows(2 * n, 4):
            if label:
                clean = " ".join(x for x in text.split() if x not in INSULTS)
                w.writerow([text, clean])
        w.writerow(["a row without a rewrite", ""])  # dropped


def _recipe(tmp_path, model, **train):
    _pairs(tmp_path / "pairs.tsv")
    raw = {"output_dir": str(tmp_path / "sft"), "algorithm": "sft",
           "model": {"name": model, "dtype": "float32"},
           "prompt": {"instruction_text": "Rewrite politely."},
           "pairs": {"source": str(tmp_path / "pairs.tsv"), "eval_fraction": 0.2},
           "lora": {"r": 8, "alpha": 16, "target_modules": [
               "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
           "evaluate": {"max_new_tokens": 8},
           "train": {"learning_rate": 2e-2, "num_train_epochs": 4,
                     "per_device_train_batch_size": 8, "logging_steps": 1, "use_cpu": True,
                     **train}}
    return build(DetoxTrainRecipe, raw, source="test")


def test_labels_mask_the_prompt_and_loss_is_response_nll(tmp_path, tiny_llama):
    from lethe.loading import load_model, load_tokenizer

    from detox.train.policy import prompt_builder
    from detox.train.sft import IGNORE, collate, encode_pair, response_nll

    recipe = _recipe(tmp_path, tiny_llama)
    tok = load_tokenizer(tiny_llama)
    builder = prompt_builder(tok, recipe.prompt)  # chat: the tokenizer has a template
    enc = encode_pair(tok, builder, "you idiot the roads", "the roads")
    prompt_ids = tok(builder.build("you idiot the roads"), add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert enc["input_ids"][:n] == prompt_ids
    assert enc["labels"][:n] == [IGNORE] * n
    assert enc["labels"][n:] == enc["input_ids"][n:]
    assert enc["input_ids"][-1] == tok.eos_token_id  # the response ends the turn
    short = encode_pair(tok, builder, "idiot", "ok")
    batch = collate(tok.pad_token_id)([enc, short])
    model = load_model(tiny_llama).eval()
    with torch.no_grad():
        loss, count = response_nll(model, batch)
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits.log_softmax(-1)
    # by hand: -log p(token t | < t) summed over response positions of both rows
    nll, m = 0.0, 0
    for row, e in enumerate([enc, short]):
        for t in range(len(e["input_ids"])):
            if e["labels"][t] != IGNORE:
                nll -= logits[row, t - 1, e["input_ids"][t]].item()
                m += 1
    assert count == m and loss.item() == pytest.approx(nll / m, rel=1e-5)


def test_sft_lowers_held_out_response_nll_and_saves_an_adapter(tmp_path, tiny_llama):
    from lethe.loading import load_model, resolve_model

    from detox.train.sft import run_sft

    res = run_sft(_recipe(tmp_path, tiny_llama))
    h = res["held_out_response_nll"]
    assert h["final"] < h["initial"] - 0.5, h
    assert res["data"]["pairs"] == 40  # the row without a rewrite was dropped
    src = resolve_model(res["saved"])
    assert src.kind == "adapter" and Path(src.base).resolve() == Path(tiny_llama).resolve()
    load_model(res["saved"])  # loads as a model, like `detox rewrite` does
    assert (tmp_path / "sft" / "results.md").is_file()
