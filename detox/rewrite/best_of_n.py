"""The `best_of_n` rewriter: sample n rewrites per input from a base rewriter and keep the one
the recipe's scorers rank highest (the product of STA, SIM and FL by default)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from detox.rewrite.recipe import rewriter, rewriter_field
from detox.rewrite.rewriters import Item, PromptRewriter, Rewrite, build_rewriter
from lethe.errors import LetheError


@rewriter("best_of_n")
@dataclass(frozen=True)
class BestOfNConfig:
    """Sample n rewrites from `base` and keep the one the recipe's scorers rank highest."""

    name: str = "best_of_n"
    n: int = 8  # sampled candidates per input
    temperature: float = 1.0
    top_p: float = 0.95
    include_greedy: bool = True  # also consider the greedy rewrite (n + 1 candidates)
    # the ranking score is the product of these components (STA soft, SIM to the input, FL,
    # and sta_clf: the soft STA of the recipe's second, learned STA scorer)
    rerank: tuple[Literal["sta", "sim", "fl", "sta_clf"], ...] = ("sta", "sim", "fl")
    base: Any = rewriter_field("fewshot", base=True)  # the rewriter that proposes candidates

    wraps = True  # wraps another rewriter (so it cannot be another best_of_n's base)
    needs_scorers = True  # `detox rewrite` builds the recipe's scorers for it

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"rewriter.n must be >= 1, got {self.n}")
        if not self.rerank:
            raise ValueError("rewriter.rerank needs at least one of sta, sim, fl")

    def build(self, recipe, scorers=None):
        if scorers is None:
            raise LetheError("best_of_n needs scorers (the recipe's scorers: section)")
        base = build_rewriter(self.base, recipe, scorers)
        if not isinstance(base, PromptRewriter):
            raise LetheError("best_of_n.base must be a fewshot or model rewriter")
        return BestOfN(base, self, scorers)

    def check(self, pf, recipe, where: str) -> None:
        """Preflight: the base rewriter's, and the scorers that rank the candidates."""
        from detox.rewrite.checks import check_rewriter, check_scorer

        check_rewriter(pf, self.base, recipe, f"{where}.base")
        for kind in self.rerank:
            check_scorer(pf, getattr(recipe.scorers, kind), f"scorers.{kind}")


class BestOfN:
    """Sample n rewrites per input from `base`, keep the one with the highest product of the
    configured components (STA soft, SIM to the input, FL) under the recipe's scorers."""

    def __init__(self, base: PromptRewriter, cfg: BestOfNConfig, scorers):
        self.base = base
        self.cfg = cfg
        self.scorers = scorers

    def rewrite(self, items: Sequence[Item]) -> list[Rewrite]:
        if not items:
            return []
        prompts = self.base.prompts(items)
        groups = self.base.candidates(items, n=self.cfg.n, prompts=prompts,
                                      sampling={"temperature": self.cfg.temperature,
                                                "top_p": self.cfg.top_p})
        if self.cfg.include_greedy:
            greedy = self.base.candidates(items, prompts=prompts)
            groups = [g + s for g, s in zip(greedy, groups)]  # greedy first: it wins ties
        flat = [c for g in groups for c in g]
        sources = [it.text for it, g in zip(items, groups) for _ in g]
        comps = self.scorers.components(self.cfg.rerank, flat, sources)
        ranking = [math.prod(vals) for vals in zip(*comps.values())]
        out, start = [], 0
        for g in groups:
            best = max(range(len(g)), key=lambda j: ranking[start + j])  # first max on ties
            out.append(Rewrite(g[best], {k: v[start + best] for k, v in comps.items()}))
            start += len(g)
        return out
