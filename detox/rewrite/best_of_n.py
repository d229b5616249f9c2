"""The `best_of_n` rewriter: sample n rewrites per input from a base rewriter and keep the one
the recipe's scorers rank highest (the product of STA, SIM and FL by default).

With `deletion`, the delete baseline joins the candidates: the input with its flagged words
dropped ("input") and every model candidate with its flagged words dropped ("candidates"). So
the reranker can fall back to deletion where the model fails, and clean a good paraphrase that
kept one swear word - the ranking (e.g. the learned STA x SIM) decides row by row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from detox.rewrite.recipe import rewriter, rewriter_field
from eval.detox.registry import scorer_field
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
    # deletion candidates: "input" = the input minus its flagged words (the delete baseline),
    # "candidates" = each model candidate minus its flagged words
    deletion: tuple[Literal["input", "candidates"], ...] = ()
    delete_scorer: Any = scorer_field("sta", "profanity")  # flags the words deletion drops

    wraps = True  # wraps another rewriter (so it cannot be another best_of_n's base)
    needs_scorers = True  # `detox rewrite` builds the recipe's scorers for it

    def __post_init__(self):
        if self.n < 0 or (self.n == 0 and not self.include_greedy):
            raise ValueError(f"rewriter.n must be >= 1 (or 0 with include_greedy), got {self.n}")
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
        if self.deletion:
            check_scorer(pf, self.delete_scorer, f"{where}.delete_scorer")


class BestOfN:
    """Sample n rewrites per input from `base`, keep the one with the highest product of the
    configured components (STA soft, SIM to the input, FL) under the recipe's scorers."""

    def __init__(self, base: PromptRewriter, cfg: BestOfNConfig, scorers):
        self.base = base
        self.cfg = cfg
        self.scorers = scorers
        self._delete = None  # the deletion baseline, built on first use

    def rewrite(self, items: Sequence[Item]) -> list[Rewrite]:
        if not items:
            return []
        groups = self.candidate_groups(items)
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

    def candidate_groups(self, items: Sequence[Item]) -> list[list[str]]:
        """Per item: the greedy rewrite (first: it wins ties), the n samples, then the
        deletion candidates; each distinct text once."""
        cfg = self.cfg
        prompts = self.base.prompts(items)
        groups: list[list[str]] = [[] for _ in items]
        if cfg.include_greedy:
            groups = [g + c for g, c in zip(groups, self.base.candidates(items,
                                                                         prompts=prompts))]
        if cfg.n > 0:
            sampled = self.base.candidates(items, n=cfg.n, prompts=prompts, sampling={
                "temperature": cfg.temperature, "top_p": cfg.top_p})
            groups = [g + c for g, c in zip(groups, sampled)]
        if cfg.deletion:
            groups = self._with_deletions(items, groups)
        return [list(dict.fromkeys(g)) for g in groups]

    def _with_deletions(self, items, groups):
        """One batched deletion over every model candidate and input of the window."""
        from detox.rewrite.baselines import Delete
        from eval.detox.registry import create

        if self._delete is None:
            self._delete = Delete(create(self.cfg.delete_scorer))
        texts = [c for g in groups for c in g] if "candidates" in self.cfg.deletion else []
        inputs = [it.text for it in items] if "input" in self.cfg.deletion else []
        cleaned = [r.text for r in self._delete.rewrite([Item(t) for t in texts + inputs])]
        out, start = [], 0
        for i, g in enumerate(groups):
            extra = cleaned[start:start + len(g)] if texts else []
            start += len(g) if texts else 0
            if inputs:
                extra.append(cleaned[len(texts) + i])
            out.append(g + [c for c in extra if c.strip()])
        return out
