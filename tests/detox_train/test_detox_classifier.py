"""`detox train-classifier` on a tiny synthetic corpus, and its pieces on hand-made inputs."""

import csv
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from detox_tiny import INSULTS, synthetic_rows
from detox.train.classifier import balanced_weights, load_folds, scores
from detox.train.recipe import LabelledData
from lethe.errors import LetheError


def _corpus(path, n_train=160, n_valid=40, n_test=60):
    rows = [(t, y, "TRAIN") for t, y in synthetic_rows(n_train, 1)]
    rows += [(t, y, "VALID") for t, y in synthetic_rows(n_valid, 2)]
    rows += [(t, y, "TEST") for t, y in synthetic_rows(n_test, 3)]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["post_text", "Inappropriateness", "fold0.0"])
        w.writerows(rows)
    return rows


def test_scores_match_hand_computed_macro_f1():
    # gold 0 0 1 1, predicted 0 1 1 1: class 0 P=1 R=.5 F1=2/3; class 1 P=2/3 R=1 F1=.8
    probs = np.array([[.9, .1], [.4, .6], [.2, .8], [.3, .7]])
    s = scores([0, 0, 1, 1], probs, 2)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert s["accuracy"] == pytest.approx(0.75)
    assert s["confusion"] == [[1, 1], [0, 2]]
    assert s["majority_macro_f1"] == pytest.approx((0 + 2 / 3) / 2)  # all-0 (tie -> class 0)


def test_balanced_weights_are_inverse_frequency():
    w = balanced_weights([0, 0, 0, 1], 2)
    assert w.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])


def test_load_folds_splits_by_fold_column_and_rejects_bad_labels(tmp_path):
    path = tmp_path / "c.csv"
    rows = _corpus(path, 6, 2, 3)
    folds = load_folds(LabelledData(source=str(path)), 2)
    assert folds["train"] == ([r[0] for r in rows[:6]], [r[1] for r in rows[:6]])
    assert len(folds["valid"][0]) == 2 and len(folds["test"][0]) == 3
    with pytest.raises(LetheError, match="no row .* fold0.0 = 'DEV'"):
        load_folds(LabelledData(source=str(path), valid="DEV"), 2)
    with pytest.raises(LetheError, match="not a class id"):
        load_folds(LabelledData(source=str(path), label_field="Inappropriateness"), 1)


def test_train_classifier_beats_chance_on_tiny_corpus(tmp_path, tiny_bert):
    from detox.cli import cli

    data = tmp_path / "corpus.csv"
    _corpus(data)
    recipe = {"output_dir": str(tmp_path / "out"), "seed": 0,
              "data": {"source": str(data)},
              "model": {"name": tiny_bert, "max_length": 16},
              "train": {"learning_rate": 3e-3, "num_train_epochs": 6,
                        "per_device_train_batch_size": 16, "logging_steps": 5,
                        "use_cpu": True}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(cli, ["train-classifier", str(tmp_path / "r.yaml")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "out" / "results.json").read_text())
    assert out["test"]["majority_macro_f1"] < 0.5
    assert out["test"]["macro_f1"] > 0.8, out["test"]  # chance is 0.5 on balanced labels
    logged = [json.loads(l) for l in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logged if "loss" in r]
    assert losses[-1] < losses[0] and "train_acc" in logged[0]
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tmp_path / "out" / "model")
    assert cfg.id2label == {0: "appropriate", 1: "inappropriate"}


def test_dry_run_prints_the_resolved_recipe_and_rejects_unknown_train_keys(tmp_path):
    from detox.cli import cli

    # a table of the default recipe's layout here, so the test does not need ../shared/data
    table = tmp_path / "corpus.csv"
    table.write_text("post_text,Inappropriateness,fold0.0\n" + "".join(
        f"text {i},{i % 2},{fold}\n" for i, fold in enumerate(["TRAIN"] * 4 + ["VALID"] * 2
                                                              + ["TEST"] * 2)))
    # its own output_dir: the default (runs/detox/classifier) may hold a user's trained model
    (tmp_path / "r.yaml").write_text(f"output_dir: {tmp_path / 'out'}\n"
                                     f"data: {{source: {table}}}\n"
                                     "train: {learning_rate: 1.0e-4}\n")
    res = CliRunner().invoke(cli, ["train-classifier", str(tmp_path / "r.yaml"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.output)["model"]["name"] == "minilm"
    (tmp_path / "bad.yaml").write_text("train: {learning_rat: 1.0e-4}\n")
    res = CliRunner().invoke(cli, ["train-classifier", str(tmp_path / "bad.yaml"), "--dry-run"])
    assert isinstance(res.exception, LetheError) and "learning_rate" in str(res.exception)


def test_embedding_head_on_pairs_learns_the_insults_and_scores_as_sta_clf(tmp_path):
    """kind: embedding_head on parallel pairs (insulting input -> the same words without
    the insult), on the hashing embedder: the head must separate held-back pairs, save a
    head directory and serve as `scorers.sta_clf` of detox eval."""
    from detox.cli import cli
    from eval.detox.registry import create, scorer_configs

    rows = synthetic_rows(240, 5)
    with open(tmp_path / "pairs.tsv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["toxic", "neutral1"])
        for text, label in rows:
            if label:
                w.writerow([text, " ".join(x for x in text.split() if x not in INSULTS)])
    recipe = {"output_dir": str(tmp_path / "out"), "kind": "embedding_head",
              "pairs": {"source": str(tmp_path / "pairs.tsv"), "input_field": "toxic",
                        "target_field": "neutral1", "eval_fraction": 0.25},
              "model": {"name": "hashing:512", "labels": ["neutral", "toxic"]},
              "head": {"c_grid": [1.0, 30.0]}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(cli, ["train-classifier", str(tmp_path / "r.yaml")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["kind"] == "embedding_head" and report["data"]["n_train"] == 180
    assert report["valid"]["n"] == 60 and report["valid"]["macro_f1"] >= 0.9
    assert report["C"] in (1.0, 30.0)
    sta = create(scorer_configs("sta")["classifier"](model=str(tmp_path / "out" / "model")))
    p_insult, p_clean = sta.toxic_prob(["the policy would help idiot people",
                                        "the policy would help people"])
    assert p_insult > 0.5 > p_clean
