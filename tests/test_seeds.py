"""`unlearn run --seeds`: one run per training seed, and a report of mean ± sd over them."""

import json
import math

import pytest

from eval.muse.seeds import aggregate, spread
from lethe.errors import LetheError
from tests.helpers import run_cli
from unlearn.cli import main
from unlearn.seeds import parse_seeds


def test_spread_is_the_sample_mean_and_sd():
    s = spread([1.0, 2.0, 6.0])
    assert s["mean"] == 3.0 and s["min"] == 1.0 and s["max"] == 6.0 and s["n"] == 3
    assert s["sd"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))
    assert spread([4.0]) == {"mean": 4.0, "sd": 0.0, "min": 4.0, "max": 4.0, "n": 1}
    assert spread([None, float("nan")])["n"] == 0


def test_aggregate_counts_the_seeds_whose_interval_holds_zero():
    def results(value, lo, hi):
        return {"metrics": ["privleak"], "models": [
            {"label": "m", "role": "model", "scores": {
                "privleak": {"value": value, "ci_low": lo, "ci_high": hi}}}]}
    agg = aggregate({0: results(2.0, -5.0, 8.0), 1: results(10.0, 4.0, 16.0)})
    cell = agg["models"][0]["scores"]["privleak"]
    assert cell["mean"] == 6.0 and cell["values"] == {"0": 2.0, "1": 10.0}
    assert cell["ci_holds_zero"] == {"0": True, "1": False}


@pytest.mark.parametrize("bad", ["", "1,1", "a,b"])
def test_bad_seed_lists_are_refused(bad):
    with pytest.raises(LetheError, match="--seeds"):
        parse_seeds(bad)


def test_run_over_two_seeds_writes_each_run_and_the_spread(tiny_prepared, tmp_path, capsys,
                                                           monkeypatch):
    _, overrides = tiny_prepared
    out, models = tmp_path / "ga", tmp_path / "models"
    sets = [x for o in overrides + [f"output_dir={out}", f"prepare.out_dir={models}"]
            for x in ("--set", o)]
    code, stdout, err = run_cli(main, ["run", "recipes/tiny.yaml", *sets, "--seeds", "0,1"],
                                capsys, monkeypatch)
    assert code == 0, err
    per_seed = {s: json.loads((out / f"seed_{s}" / "results.json").read_text()) for s in (0, 1)}
    for s in (0, 1):  # each seed prepared its own models from its own initialisation
        assert json.loads((models / f"seed_{s}" / "prepare.json").read_text())["models"]
    agg = json.loads((out / "results.json").read_text())
    assert agg["seeds"] == [0, 1] and (out / "results.md").is_file()
    assert (out / "results.png").stat().st_size > 0
    labels = [r["label"] for r in per_seed[0]["models"]]
    assert [r["label"] for r in agg["models"]] == labels
    for row in agg["models"]:
        for metric, cell in row["scores"].items():
            values = [next(r for r in per_seed[s]["models"] if r["label"] == row["label"])
                      ["scores"][metric]["value"] for s in (0, 1)]
            assert cell["mean"] == pytest.approx(sum(values) / 2)
            assert cell["sd"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    # different seeds are different trainings: the target's forget NLL-based scores differ
    target = [next(r for r in per_seed[s]["models"] if r["role"] == "target") for s in (0, 1)]
    assert target[0]["scores"] != target[1]["scores"]
    assert "±" in stdout
    # --resume skips finished seeds (their files untouched) and rewrites the same report
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("seed_*/**/*") if p.is_file()}
    code, _, err = run_cli(main, ["run", "recipes/tiny.yaml", *sets, "--seeds", "0,1",
                                  "--resume"], capsys, monkeypatch)
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "results.json").read_text())["models"] == agg["models"]


def test_same_models_keeps_the_prepared_target_for_every_seed():
    """--same-models: each seed writes its own output_dir but unlearns the one prepared
    target (the models' paths are left alone); without it each seed prepares its own."""
    from unlearn.recipe import load_unlearn_recipe
    from unlearn.seeds import seed_overrides

    rec = load_unlearn_recipe("recipes/shakespeare.yaml")
    shared = seed_overrides(rec, 2, same_models=True)
    assert shared == ["seed=2", "output_dir=runs/shakespeare/npo_gdr/seed_2"]
    own = seed_overrides(rec, 2)
    assert "prepare.out_dir=runs/shakespeare/models/seed_2" in own
    assert "model.target=runs/shakespeare/models/seed_2/target" in own
