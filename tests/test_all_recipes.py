"""Every YAML under recipes/ loads with its schema (the offline dry-run of each recipe)."""

from pathlib import Path

import pytest

from lethe.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.relative_to(ROOT) for p in (ROOT / "recipes").rglob("*.yaml"))


def loader_for(path: Path):
    """Which schema a recipe file uses, from where it lives and what it is called."""
    if path.parts[1] != "detox":
        from unlearn.recipe import load_unlearn_recipe

        return load_unlearn_recipe
    from detox.train.recipe import load_classifier_recipe, load_train_recipe

    if path.stem.startswith("classifier"):
        return load_classifier_recipe
    if path.stem.startswith(("rl_", "sft_")):
        return load_train_recipe
    from detox.rewrite.recipe import RewriteRecipe

    return lambda p: load_recipe(p, RewriteRecipe)


def test_there_are_recipes():
    assert len(RECIPES) >= 15


@pytest.mark.parametrize("path", RECIPES, ids=str)
def test_recipe_loads(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = loader_for(path)(path)
    assert recipe is not None


def test_shakespeare_compare_runs_every_method_on_the_one_prepared_target(monkeypatch):
    """recipes/shakespeare_compare.yaml: the eight methods of issue #16, each unlearning the
    target that recipes/shakespeare.yaml prepares (LoRA, merged), through LoRA adapters."""
    from unlearn.recipe import expand_variants, load_unlearn_recipe

    monkeypatch.chdir(ROOT)
    single = load_unlearn_recipe("recipes/shakespeare.yaml")
    compare = load_unlearn_recipe("recipes/shakespeare_compare.yaml")
    variants = dict(expand_variants(compare))
    assert {v.method.name for v in variants.values()} == {
        "ga", "grad_diff", "npo", "npo_gdr", "simnpo", "rmu", "task_vector", "whp"}
    assert single.prepare.lora.enabled and single.prepare.base_model == "smollm2"
    for label, v in variants.items():
        assert v.target_spec() == single.target_spec(), label
        assert v.prepare == single.prepare and v.lora.enabled and v.save.merge_lora, label
