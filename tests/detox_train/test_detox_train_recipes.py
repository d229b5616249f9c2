"""The shipped detox training recipes resolve; bad keys fail with one line; a sweep trains one
policy per weighting and writes one trade-off table and plot."""

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lethe.errors import LetheError

from detox.train.recipe import load_train_recipe, with_weights

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "detox"


def _dry(*args):
    from detox.cli import cli

    res = CliRunner().invoke(cli, ["train", *args, "--dry-run"])
    return res


# What a shipped recipe may lack in a fresh offline checkout: the classifier a reward needs is
# trained by another command first, and hub models are not cached. Its dry run still prints
# the resolved recipe, and its preflight must name these and nothing else. The recipes name the
# public hub datasets (not cached offline); recipes/detox/local/* the copies beside the project.
OFFLINE = "not available offline"
MAY_LACK = {"rl_smollm2": ["runs/detox/classifier/model", OFFLINE],
            "rl_sweep": ["runs/detox/classifier/model", OFFLINE],
            "rl_llama8b_zero3": ["runs/detox/classifier_deberta/model", OFFLINE],
            "sft_paradetox": [OFFLINE],
            "local/rl_smollm2": ["runs/detox/classifier/model", "../shared/data"],
            "rl_arguments": ["runs/detox/classifier/model", OFFLINE],
            "local/rl_arguments": ["runs/detox/classifier/model", "../shared/data"],
            "local/sft_paradetox": ["../shared/data"]}


@pytest.mark.parametrize("name", ["rl_smollm2", "rl_sweep", "rl_llama8b_zero3",
                                  "sft_paradetox", "local/rl_smollm2", "local/sft_paradetox",
                                  "rl_arguments", "local/rl_arguments"])
def test_shipped_recipes_resolve_with_dry_run(name, monkeypatch, tmp_path):
    from lethe.preflight import PreflightError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = RECIPES / f"{name}.yaml"
    if name == "rl_llama8b_zero3" and not (RECIPES.parent / "deepspeed" / "zero3.json").is_file():
        pytest.skip("recipes/deepspeed/zero3.json is not in this checkout")
    res = _dry(str(path), "--set", f"output_dir={tmp_path / 'out'}")  # not a finished run's
    doc = yaml.safe_load(res.output)
    if res.exit_code == 0:
        assert doc["preflight"] == "ok" and doc["checked"]
    else:
        assert isinstance(res.exception, PreflightError), res.output
        for line in res.exception.problems:
            assert any(x in line for x in MAY_LACK[name]), line
    resolved = doc["resolved"]
    if doc["algorithm"] == "sft":
        assert resolved["trainer_config"] == "TrainingArguments"
    else:
        assert resolved["trainer_config"] == "GRPOConfig"
        assert resolved["beta"] == pytest.approx(0.001857)
    if name == "rl_llama8b_zero3":
        assert resolved["deepspeed"] == "recipes/deepspeed/zero3.json"
        assert resolved["bf16"] is True and doc["lora"]["r"] == 8


def test_sweep_recipe_resolves_to_the_papers_weightings():
    r = load_train_recipe(RECIPES / "rl_sweep.yaml")
    pairs = [(w.appropriateness, w.similarity) for w in r.sweep.weightings]
    assert pairs == [(0.4, 0.6), (0.45, 0.55), (0.5, 0.5), (0.55, 0.45), (0.6, 0.4), (1.0, 0.0)]
    sub = with_weights(r, r.sweep.weightings[0], "x/app0.40")
    assert sub.rewards.weights.appropriateness == 0.4 and sub.rewards.weights.similarity == 0.6
    assert sub.output_dir == "x/app0.40" and not sub.sweep.weightings
    assert sub.rewards.appropriateness == r.rewards.appropriateness  # scorers unchanged
    res = _dry(str(RECIPES / "rl_sweep.yaml"))
    runs = yaml.safe_load(res.output)["resolved"]["runs"]
    assert len(runs) == 6 and runs["runs/detox/rl_sweep/sweep/app1.00-sim0.00"] == \
        {"appropriateness": 1.0}


def test_bad_keys_fail_with_one_line_and_a_suggestion():
    path = str(RECIPES / "rl_smollm2.yaml")
    res = _dry(path, "--set", "train.num_generation=4")
    assert isinstance(res.exception, LetheError) and "num_generations" in str(res.exception)
    res = _dry(path, "--set", "algorithm=rloo", "--set", "train.scale_rewards=group")
    assert isinstance(res.exception, LetheError)
    assert "not a RLOOConfig field" in str(res.exception)
    res = _dry(path, "--set", "rewards.similarity.name=cosine")
    assert isinstance(res.exception, LetheError) and "embedding" in str(res.exception)
    res = _dry(path, "--set", "rewards.weights.appropriateness=-1")
    assert isinstance(res.exception, LetheError) and ">= 0" in str(res.exception)


def test_sweep_trains_each_weighting_and_writes_the_tradeoff(tmp_path, tiny_llama):
    import dataclasses

    from test_detox_rl import _recipe, _scorers

    from detox.train.sweep import run_sweep
    from detox.train.recipe import SweepSection, Weighting

    recipe = _recipe(tmp_path, tiny_llama)
    recipe = dataclasses.replace(recipe, sweep=SweepSection(
        (Weighting(0.5, 0.5), Weighting(1.0, 0.0))))
    res = run_sweep(recipe, scorers=_scorers())
    names = [r["weighting"] for r in res["rows"]]
    assert names == ["initial policy", "app0.50-sim0.50", "app1.00-sim0.00"]
    assert all(r["appropriateness"] is not None and r["similarity"] is not None
               for r in res["rows"])
    out = tmp_path / "out"
    for tag in names[1:]:
        assert (out / "sweep" / tag / "model" / "adapter_config.json").is_file()
    assert (out / "results.png").is_file()
    assert "app1.00-sim0.00" in (out / "results.md").read_text()
    one = json.loads((out / "sweep" / "app1.00-sim0.00" / "results.json").read_text())
    assert one["weights"] == {"appropriateness": 1.0}
