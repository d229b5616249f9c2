"""The rewrite recipe: default.yaml is the schema default; variants load; typos are named."""

from pathlib import Path

import pytest

from detox.rewrite.recipe import load_rewrite_recipe
from detox.rewrite.best_of_n import BestOfNConfig
from detox.rewrite.fewshot import FewShotConfig
from detox.rewrite.model import ModelConfig
from detox.rewrite.recipe import RewriteRecipe
from lethe.errors import LetheError
from lethe.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "detox"


def test_default_yaml_is_the_schema_default():
    assert load_recipe(RECIPES / "default.yaml", RewriteRecipe) == RewriteRecipe()
    assert load_rewrite_recipe(None) == RewriteRecipe()


def test_the_default_is_the_shipped_rewriter_with_deletion_candidates():
    r = RewriteRecipe().rewriter
    assert isinstance(r, BestOfNConfig) and isinstance(r.base, ModelConfig)
    assert r.n == 0 and r.include_greedy and r.deletion == ("input", "candidates")
    assert r.base.adapter == "builtin" and r.base.prompt.format == "plain"
    from detox.rewrite.recipe import builtin_adapter_dir

    assert r.base.adapter_path == str(builtin_adapter_dir())


@pytest.mark.parametrize("name, kind", [
    ("default", BestOfNConfig), ("fewshot", FewShotConfig), ("trained", ModelConfig),
    ("best_of_n", BestOfNConfig), ("zero_shot", FewShotConfig),
    ("random_demos", FewShotConfig), ("lora_model", ModelConfig),
    ("capp_context", FewShotConfig)])
def test_shipped_recipes_load(name, kind):
    recipe = load_recipe(RECIPES / f"{name}.yaml", RewriteRecipe)
    assert isinstance(recipe.rewriter, kind)


def test_variants_change_what_they_say():
    assert load_recipe(RECIPES / "zero_shot.yaml", RewriteRecipe).rewriter.k == 0
    bon = load_recipe(RECIPES / "best_of_n.yaml", RewriteRecipe).rewriter
    assert bon.n == 8 and bon.rerank == ("sta", "sim", "fl") and bon.base.k == 4


def test_overrides_and_typos():
    fewshot = str(RECIPES / "fewshot.yaml")
    r = load_rewrite_recipe(fewshot, ["rewriter.k=10", "rewriter.selection=random",
                                      "rewriter.prompt.instruction=false"])
    assert (r.rewriter.k, r.rewriter.selection, r.rewriter.prompt.instruction) == \
        (10, "random", False)
    with pytest.raises(LetheError, match="unknown key 'kk'.*did you mean 'k'"):
        load_rewrite_recipe(fewshot, ["rewriter.kk=3"])
    with pytest.raises(LetheError, match="'closest' is not one of.*"):
        load_rewrite_recipe(fewshot, ["rewriter.selection=closest"])
    with pytest.raises(LetheError, match="rewriter.k must be >= 0"):
        load_rewrite_recipe(None, ["rewriter.name=fewshot", "rewriter.k=-1"])
    with pytest.raises(LetheError, match="rewriter.n must be >= 1"):
        load_rewrite_recipe(None, ["rewriter.include_greedy=false"])
    with pytest.raises(LetheError, match="unknown key 'modle'.*did you mean 'model'"):
        load_rewrite_recipe(None, ["scorers.fl.modle=x"])


def test_switching_a_registry_section_by_name():
    r = load_rewrite_recipe(None, ["rewriter.n=2", "rewriter.base.name=fewshot",
                                   "rewriter.base.k=1"])
    assert isinstance(r.rewriter, BestOfNConfig) and r.rewriter.n == 2 and r.rewriter.base.k == 1
    r = load_rewrite_recipe(str(RECIPES / "best_of_n.yaml"),
                            ["rewriter.base.name=model", "scorers.sta.name=classifier",
                             "scorers.sta.model=some/classifier"])
    assert isinstance(r.rewriter.base, ModelConfig) and r.scorers.sta.model == "some/classifier"
    with pytest.raises(LetheError, match="unknown rewriter.base name 'best_of_n'"):
        load_rewrite_recipe(None, ["rewriter.name=best_of_n", "rewriter.base.name=best_of_n"])
