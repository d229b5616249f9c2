"""The ParaDetox held-out slice never reaches a pool, a training set or a prompt."""

import csv
from pathlib import Path

import pytest
import yaml

from detox import heldout

HELD = "you are a stupid moron"  # stands for a held-out toxic sentence in these tests
ROWS = [("you are a stupid moron", "you are wrong"), ("shut the hell up", "please be quiet"),
        ("this is fucking great", "this is great"), ("what a dumb idea", "what a bad idea")]


@pytest.fixture
def held(monkeypatch):
    """Pretend HELD (in any case/spacing) is in the held-out slice."""
    keys = frozenset({heldout.text_key(HELD)})
    monkeypatch.setattr(heldout, "heldout_keys", lambda: keys)
    return keys


def paradetox_tsv(path: Path) -> str:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["toxic", "neutral1", "neutral2", "neutral3"])
        for toxic, neutral in ROWS:
            w.writerow([toxic.upper() if toxic == HELD else toxic, neutral, "", ""])
    return str(path)


def test_text_key_ignores_case_and_spacing():
    assert heldout.text_key("You  are a STUPID moron ") == heldout.text_key(HELD)
    assert heldout.text_key("you are a stupid moron!") != heldout.text_key(HELD)


def test_every_loader_leaves_the_heldout_slice_out(tmp_path, held, tiny_llama):
    from detox.rewrite.fewshot import load_pool
    from detox.train.classifier_head import pair_folds
    from detox.train.recipe import PairData, load_train_recipe
    from detox.train.rl import build_datasets
    from detox.train.sft import load_pairs
    from lethe.loading import load_tokenizer

    src = paradetox_tsv(tmp_path / "pd.tsv")
    pool = load_pool(src)
    assert len(pool) == 3 and all(heldout.text_key(d.source) not in held for d in pool)
    pairs = PairData(source=src, input_field="toxic", target_field="neutral1")
    assert sorted(a for a, _ in load_pairs(pairs, 0)) == sorted(t for t, _ in ROWS[1:])
    folds = pair_folds(pairs, ("neutral", "toxic"), 0)
    texts = [t for k in folds for t in folds[k][0]]
    assert HELD.upper() not in texts and "you are wrong" not in texts and len(texts) == 6
    # RL prompts: a table of texts to rewrite, no folds
    (tmp_path / "args.csv").write_text("post_text\n" + "\n".join(t for t, _ in ROWS) + "\n")
    recipe_file = tmp_path / "rl.yaml"
    recipe_file.write_text(yaml.safe_dump({
        "model": {"name": tiny_llama}, "filter": {"enabled": False},
        "data": {"source": str(tmp_path / "args.csv"), "fold_field": None}}))
    ds, _, _ = build_datasets(load_train_recipe(recipe_file), load_tokenizer(tiny_llama), {})
    assert sorted(ds["source"]) == sorted(t for t, _ in ROWS[1:])


def test_the_shipped_list_is_the_last_500_rows_of_the_dev_copy():
    keys = heldout.heldout_keys()
    assert len(keys) == heldout.HELDOUT_ROWS == 500
    data = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "paradetox_dev.tsv"
    if not data.is_file():
        pytest.skip(f"{data} absent (development data beside the project)")
    with data.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert {heldout.text_key(r["toxic"]) for r in rows[-500:]} == keys
    assert not any(heldout.is_heldout(r["toxic"]) for r in rows[:-500])
