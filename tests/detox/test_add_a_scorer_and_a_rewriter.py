"""docs/dev/extending.md, "Add a scorer" and "Add a rewriter", each followed once: one new file
in eval/detox/ (a scorer), one new file in detox/rewrite/ (a rewriter)."""

import pytest

from detox.rewrite.recipe import REWRITERS, load_rewrite_recipe
from detox.rewrite.rewriters import Item, build_rewriter
from eval.detox.registry import SCORERS, create, scorer_configs
from eval.detox.scorers import Scorers
from lethe.errors import LetheError
from lethe.preflight import Preflight
from tests.plugins import module_in_package

SCORER = '''
"""SIM by word overlap (a toy): |words(a) & words(b)| / |words(a) | words(b)|."""

from dataclasses import dataclass

from eval.detox.registry import register


class JaccardSim:
    def __init__(self, lowercase: bool = True):
        self.lowercase = lowercase

    def _words(self, text):
        return set((text.lower() if self.lowercase else text).split())

    def score(self, texts, sources=None):
        out = []
        for t, s in zip(texts, sources):
            a, b = self._words(t), self._words(s)
            out.append(len(a & b) / len(a | b) if a | b else 1.0)
        return out


@register("sim", "jaccard", JaccardSim)
@dataclass(frozen=True)
class JaccardConfig:
    name: str = "jaccard"
    lowercase: bool = True  # compare words case-insensitively
'''

REWRITER = '''
"""The `shout` rewriter (a toy): the input in capitals, optionally with a suffix."""

from dataclasses import dataclass

from detox.rewrite.recipe import rewriter
from detox.rewrite.rewriters import Rewrite


class Shout:
    def __init__(self, suffix):
        self.suffix = suffix

    def rewrite(self, items):
        return [Rewrite(it.text.upper() + self.suffix) for it in items]


@rewriter("shout")
@dataclass(frozen=True)
class ShoutConfig:
    name: str = "shout"
    suffix: str = "!"  # appended to every rewrite

    def build(self, recipe, scorers=None):
        return Shout(self.suffix)

    def check(self, pf, recipe, where):
        if not self.suffix:
            pf.problem(f"{where}.suffix: must not be empty")
'''


def test_one_file_adds_a_scorer(tmp_path):
    with module_in_package("eval.detox", "jaccard", SCORER, tmp_path, (SCORERS,)):
        assert "jaccard" in scorer_configs("sim")
        recipe = load_rewrite_recipe(None, ["scorers.sim.name=jaccard",
                                            "scorers.sim.lowercase=false"])
        sim = Scorers.from_config(recipe.scorers).sim
        assert sim.score(["a b c", "Go home"], ["a b d", "go home"]) == \
            pytest.approx([2 / 4, 1 / 3])
        assert create(scorer_configs("sim")["jaccard"]()).score(["Go"], ["go"]) == [1.0]
    assert "jaccard" not in scorer_configs("sim")


def test_one_file_adds_a_rewriter(tmp_path):
    with module_in_package("detox.rewrite", "shout", REWRITER, tmp_path, (REWRITERS,)):
        recipe = load_rewrite_recipe(None, ["rewriter.name=shout", "rewriter.suffix=?!"])
        got = build_rewriter(recipe.rewriter, recipe).rewrite([Item("be quiet"), Item("ok")])
        assert [r.text for r in got] == ["BE QUIET?!", "OK?!"]
        from detox.rewrite.checks import check_rewriter

        pf = Preflight("detox rewrite")
        empty = load_rewrite_recipe(None, ["rewriter.name=shout", "rewriter.suffix="])
        check_rewriter(pf, empty.rewriter, empty)
        assert pf.problems == ["rewriter.suffix: must not be empty"]
    with pytest.raises(LetheError, match="unknown rewriter name 'shout'"):
        load_rewrite_recipe(None, ["rewriter.name=shout"])
