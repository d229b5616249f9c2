"""The registry of `detox train` algorithms: `algorithm: NAME` in a recipe picks a runner.

A runner is `run(recipe, *, resume=False, scorers=None) -> results dict`, registered with
`@register("name")` in the module that defines it (detox/train/rl.py: grpo, rloo;
detox/train/sft.py: sft). Every module of `detox.train` is imported (package scan) before a
name is looked up, so a new algorithm is one new file here.
"""

from __future__ import annotations

from typing import Callable

from lethe.errors import LetheError
from lethe.registry import discover

ALGORITHMS: dict[str, Callable] = {}  # algorithm name -> run(recipe, *, resume, scorers)


def register(name: str):
    def deco(fn):
        if name in ALGORITHMS and ALGORITHMS[name] is not fn:
            raise ValueError(f"detox train algorithm {name!r} registered twice")
        ALGORITHMS[name] = fn
        return fn

    return deco


def algorithms() -> dict[str, Callable]:
    """Every registered algorithm (the modules of detox.train imported first)."""
    discover("detox.train")
    return ALGORITHMS


def get_algorithm(name: str) -> Callable:
    table = algorithms()
    if name not in table:
        raise LetheError(f"algorithm '{name}' has no runner ({', '.join(sorted(table))})")
    return table[name]
