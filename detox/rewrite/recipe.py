"""The `detox rewrite` recipe: which rewriter, how to prompt and generate, how to score.

    rewriter:            # a registry section: `name:` picks one of the registered rewriters
      name: fewshot      # fewshot | model | best_of_n
      model: smollm2
      pool: builtin
      k: 4
      ...
    generation: {batch_size: 32, window: 64, max_new_tokens: 48}
    scorers: {sta: {name: profanity}, sim: {name: embedding}, fl: {name: perplexity}}
    scores: false

The schema's defaults *are* the default recipe (recipes/detox/default.yaml spells them out and a
test keeps the two equal), so `detox rewrite` works without any file.

A rewriter is one module of `detox.rewrite` defining a frozen config dataclass registered with
`@rewriter("name")`, whose `build(recipe, scorers)` returns the object that rewrites and whose
optional `check(pf, recipe, where)` is its preflight (detox/rewrite/fewshot.py, model.py,
best_of_n.py; docs/dev/extending.md). Every module of the package is imported before the
registry is read, so no list names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eval.detox.scorers import ScorersConfig
from lethe.recipe import load_recipe, registry_field
from lethe.registry import discover

# name -> config dataclass of a rewriter
REWRITERS: dict[str, type] = {}


def rewriter(name: str):
    """Class decorator: register a rewriter config dataclass under `name`."""

    def deco(cls):
        if REWRITERS.get(name, cls) is not cls:
            raise ValueError(f"rewriter {name!r} registered twice")
        REWRITERS[name] = cls
        return cls

    return deco


def rewriter_configs() -> dict[str, type]:
    """name -> config class of every rewriter (the modules of detox.rewrite imported first)."""
    discover("detox.rewrite")
    return REWRITERS


def _lookup(name: str) -> type:
    return rewriter_configs()[name]


def _names() -> list[str]:
    return sorted(rewriter_configs())


def _base_names() -> list[str]:
    """Rewriters another one can wrap (best-of-n's base): not those that wrap one themselves."""
    return sorted(n for n, c in rewriter_configs().items() if not getattr(c, "wraps", False))


def _base_lookup(name: str) -> type:
    if name not in _base_names():
        raise KeyError(name)
    return rewriter_configs()[name]


def rewriter_field(default: str, *, base: bool = False):
    """A recipe section whose `name:` picks a rewriter (`base`: one that wraps no other)."""
    lookup, names = (_base_lookup, _base_names) if base else (_lookup, _names)
    return registry_field(lookup, names, default_factory=lambda: _lookup(default)())


DEFAULT_INSTRUCTION = ("Rewrite the user's message so that it is polite and free of insults, "
                       "swearing and toxicity, but keeps its meaning. Reply with the rewritten "
                       "message only.")


@dataclass(frozen=True)
class PromptConfig:
    # chat: the model's chat template (instruction as system turn; each demonstration a
    # user/assistant pair); plain: "Rude: ...\nPolite: ..." lines for base LMs; raw: `template`
    # as is (seq2seq or fine-tuned models); auto: chat if the tokenizer has a chat template,
    # raw for seq2seq models, else plain.
    format: Literal["auto", "chat", "plain", "raw"] = "auto"
    instruction: bool = True  # include the instruction (Som et al. 2024 compare with/without)
    instruction_text: str = DEFAULT_INSTRUCTION
    use_context: bool = True  # put an input's earlier dialogue turns (`context`) in the prompt
    # how a message with context is shown ({context}: turns joined by context_separator)
    context_template: str = "Conversation so far: {context}\nMessage to rewrite: {text}"
    context_separator: str = " | "
    source_label: str = "Rude:"  # plain format: label of the input line
    target_label: str = "Polite:"  # plain format: label of the rewrite line
    template: str = "{text}"  # raw format: the whole prompt ({text}, {context} available)
    first_line: bool = True  # keep only the first non-empty line the model generates


BUILTIN_ADAPTER = "builtin"  # `adapter: builtin` = the shipped ParaDetox rewriter (LoRA)


def builtin_adapter_dir() -> Path:
    """The LoRA adapter shipped with the package (detox/data/rewriter; its README.md is the
    model card: recipe, data hash, steps, loss curve)."""
    return Path(__file__).resolve().parents[1] / "data" / "rewriter"


@dataclass(frozen=True)
class LMFields:
    model: str = "smollm2"  # hub id, local dir, GGUF file, adapter dir or `smollm2`
    # a PEFT (LoRA) adapter directory put on `model`; `builtin` = the shipped ParaDetox
    # rewriter (SFT of SmolLM2, detox/data/rewriter)
    adapter: str | None = None
    merge_adapter: bool = True  # fold the adapter into the weights (faster inference)
    task: Literal["auto", "causal-lm", "seq2seq"] = "auto"  # auto: read from the model config
    dtype: str = "float32"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto = first accelerator torch sees, else cpu

    @property
    def adapter_path(self) -> str | None:
        """`adapter` with the `builtin` alias resolved."""
        if self.adapter == BUILTIN_ADAPTER:
            return str(builtin_adapter_dir())
        return self.adapter


@dataclass(frozen=True)
class GenerationConfig:
    batch_size: int = 32  # inputs per generate() call (32: 3.3x batch 1 on 2 CPU cores, 16: 2.9x)
    # inputs read at once, sorted by prompt length into batches (less padding), and written
    # together (the unit of flush + fsync: a killed run redoes at most this many lines)
    window: int = 64
    max_new_tokens: int = 48
    seed: int = 0  # torch seed for sampling (best-of-n)

    def __post_init__(self):
        if min(self.batch_size, self.window, self.max_new_tokens) < 1:
            raise ValueError("generation.batch_size, generation.window and "
                             "generation.max_new_tokens must be >= 1")


# The default rewriter (docs/detox.md, "The default"): the shipped SFT adapter on SmolLM2,
# greedy, prompted "Rude: <text>\nPolite:"; its rewrite, that rewrite minus the words
# alt-profanity-check flags, and the input minus them (the delete baseline) are the candidates;
# the one with the highest DEFAULT_RERANK product wins, row by row.
DEFAULT_RERANK = ("sta_clf", "sim")


def default_rewriter():
    """The `rewriter:` section `detox rewrite` uses without a recipe."""
    cfgs = rewriter_configs()
    prompt = PromptConfig(format="plain", instruction=False)
    base = cfgs["model"](adapter=BUILTIN_ADAPTER, prompt=prompt)
    return cfgs["best_of_n"](n=0, base=base, deletion=("input", "candidates"),
                             rerank=DEFAULT_RERANK)


@dataclass(frozen=True)
class RewriteRecipe:
    # default: the shipped SFT rewriter + deletion candidates, reranked (default_rewriter)
    rewriter: Any = registry_field(_lookup, _names, default_factory=default_rewriter)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    scorers: ScorersConfig = field(default_factory=ScorersConfig)  # best-of-n ranking, scores
    scores: bool = False  # add per-line {"sta", "sim", "fl"} of each rewrite (`--scores`)


def load_rewrite_recipe(path: str | None, overrides=()) -> RewriteRecipe:
    """The recipe at `path`, or the built-in default (the schema's defaults), plus overrides."""
    return load_recipe(path, RewriteRecipe, overrides)
