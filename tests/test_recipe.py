"""The recipe loader: types, unknown keys with suggestions, overrides, base recipes."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from lethe.errors import LetheError
from lethe.recipe import build, dump_yaml, load_recipe, passthrough_field
from unlearn.recipe import UnlearnRecipe, load_unlearn_recipe


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    steps: int = 3
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    free: dict = passthrough_field(lambda: {"alpha", "beta"})


def write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builds_nested_frozen_dataclasses(tmp_path):
    r = load_recipe(write(tmp_path, "inner: {rate: 1e-4, steps: 7, tags: [p, q]}\nmaybe: {}\n"),
                    Outer)
    assert r.inner == Inner(rate=1e-4, steps=7, tags=("p", "q"))  # "1e-4" (a YAML string) → float
    assert r.maybe == Inner()
    with pytest.raises(Exception):
        r.name = "changed"  # frozen


def test_unknown_key_names_file_key_and_nearest(tmp_path):
    path = write(tmp_path, "inner:\n  rat: 0.5\n")
    with pytest.raises(LetheError) as err:
        load_recipe(path, Outer)
    msg = str(err.value)
    assert str(path) in msg and "'rat'" in msg and "inner" in msg and "did you mean 'rate'" in msg


def test_unknown_top_level_and_passthrough_keys(tmp_path):
    with pytest.raises(LetheError, match="did you mean 'inner'"):
        load_recipe(write(tmp_path, "iner: {}\n"), Outer)
    with pytest.raises(LetheError, match="unknown key 'alpah' in free.*did you mean 'alpha'"):
        load_recipe(write(tmp_path, "free: {alpah: 1}\n"), Outer)


@pytest.mark.parametrize("text, expect", [
    ("inner: {steps: many}", "inner.steps: expected an integer, got str 'many'"),
    ("inner: {rate: fast}", "inner.rate: expected a number"),
    ("mode: c", "mode: 'c' is not one of a, b"),
    ("inner: [1, 2]", "inner must be a mapping"),
    ("inner: {tags: p}", "inner.tags: expected a list"),
])
def test_wrong_types(tmp_path, text, expect):
    with pytest.raises(LetheError, match=expect.replace("[", r"\[").replace("(", r"\(")):
        load_recipe(write(tmp_path, text + "\n"), Outer)


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(LetheError, match=r"malformed YAML at line 3"):
        load_recipe(write(tmp_path, "inner:\n  rate: [1, 2\n"), Outer)
    with pytest.raises(LetheError, match="recipe file not found"):
        load_recipe(tmp_path / "absent.yaml", Outer)


def test_overrides_set_values_and_refuse_unknown_keys(tmp_path):
    path = write(tmp_path, "inner: {rate: 0.5}\n")
    r = load_recipe(path, Outer, ["inner.steps=9", "name=y", "free.beta=[1, 2]"])
    assert (r.inner.steps, r.inner.rate, r.name, r.free) == (9, 0.5, "y", {"beta": [1, 2]})
    with pytest.raises(LetheError, match=r"--set inner.stepz=1: unknown key 'stepz' in inner "
                                         r"\(did you mean 'steps'\?\)"):
        load_recipe(path, Outer, ["inner.stepz=1"])
    with pytest.raises(LetheError, match="expected KEY=VALUE"):
        load_recipe(path, Outer, ["inner.steps"])


def test_base_recipe_is_extended(tmp_path):
    write(tmp_path, "name: base\ninner: {rate: 0.5, steps: 2}\n", "base.yaml")
    r = load_recipe(write(tmp_path, "base: base.yaml\ninner: {steps: 4}\n"), Outer)
    assert (r.name, r.inner.rate, r.inner.steps) == ("base", 0.5, 4)


def test_method_section_picks_registered_dataclass(tmp_path):
    path = write(tmp_path, "method: {name: ga}\ntrain: {learning_rate: 1e-3, max_steps: 2}\n")
    r = load_unlearn_recipe(path)
    assert type(r.method).__name__ == "GAConfig" and r.train["learning_rate"] == 1e-3
    with pytest.raises(LetheError, match="unknown method name 'gaa'.*did you mean 'ga'"):
        load_unlearn_recipe(write(tmp_path, "method: {name: gaa}\n", "bad.yaml"))
    with pytest.raises(LetheError, match=r"train.learning_rate: expected a number, got str 'fast'"):
        load_unlearn_recipe(write(tmp_path, "method: ga\ntrain: {learning_rate: fast}\n", "b3.yaml"))
    with pytest.raises(LetheError, match="unknown key 'lerning_rate' in train.*'learning_rate'"):
        load_unlearn_recipe(write(tmp_path, "method: ga\ntrain: {lerning_rate: 1}\n", "b2.yaml"))


def test_dump_round_trips(tmp_path):
    r = load_unlearn_recipe("recipes/tiny.yaml")
    again = load_unlearn_recipe(write(tmp_path, dump_yaml(r)))
    assert again == r and isinstance(again, UnlearnRecipe)


def test_build_reports_missing_required_key():
    @dataclass(frozen=True)
    class Needs:
        must: int

    with pytest.raises(LetheError, match="missing required key 'must'"):
        build(Needs, {}, source="x.yaml")


def test_switching_the_method_by_override_keeps_shared_keys_and_drops_foreign_ones(tmp_path,
                                                                                    caplog):
    path = write(tmp_path, "method: {name: npo_gdr, beta: 0.01, alpha: 2.0}\n")
    with caplog.at_level("INFO", logger="lethe.recipe"):
        r = load_unlearn_recipe(path, ["method.name=grad_diff"])
    # grad_diff weighs its retain term like npo_gdr does; NPO's beta means nothing to it
    assert type(r.method).__name__ == "GradDiffConfig" and r.method.alpha == 2.0
    assert "dropped method.beta (not settings of grad_diff)" in caplog.text
    r = load_unlearn_recipe(path, ["method.name=npo", "method.beta=0.2"])
    assert type(r.method).__name__ == "NPOConfig" and r.method.beta == 0.2
    with pytest.raises(LetheError, match="unknown method name 'npoo'.*did you mean 'npo'"):
        load_unlearn_recipe(path, ["method.name=npoo"])
