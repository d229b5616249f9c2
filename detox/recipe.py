"""The `detox rewrite` recipe: which rewriter, how to prompt and generate, how to score.

    rewriter:            # a registry section: `name:` picks one of REWRITERS below
      name: fewshot      # fewshot | model | best_of_n
      model: smollm2
      pool: builtin
      k: 4
      ...
    generation: {batch_size: 32, window: 64, max_new_tokens: 48}
    scorers: {sta: {name: profanity}, sim: {name: embedding}, fl: {name: perplexity}}
    scores: false

The schema's defaults *are* the default recipe (recipes/detox/default.yaml spells them out and a
test keeps the two equal), so `detox rewrite` works without any file. Implementations of the
rewriters live in detox/rewriters.py and register against these config classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from eval.detox.scorers import ScorersConfig
from lethe.recipe import registry_field

# name -> config dataclass of a rewriter
REWRITERS: dict[str, type] = {}


def rewriter_config(name: str):
    """Class decorator: register a rewriter config dataclass under `name`."""

    def deco(cls):
        if name in REWRITERS:
            raise ValueError(f"rewriter {name!r} registered twice")
        REWRITERS[name] = cls
        return cls

    return deco


def _lookup(name: str) -> type:
    return REWRITERS[name]


def _names() -> list[str]:
    return sorted(REWRITERS)


def _base_names() -> list[str]:
    return sorted(n for n in REWRITERS if n != "best_of_n")


def _base_lookup(name: str) -> type:
    if name == "best_of_n":
        raise KeyError(name)
    return REWRITERS[name]


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


@dataclass(frozen=True)
class LMFields:
    model: str = "smollm2"  # hub id, local dir, GGUF file, adapter dir or `smollm2`
    adapter: str | None = None  # a PEFT (LoRA) adapter directory put on `model`
    merge_adapter: bool = True  # fold the adapter into the weights (faster inference)
    task: Literal["auto", "causal-lm", "seq2seq"] = "auto"  # auto: read from the model config
    dtype: str = "float32"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto = first accelerator torch sees, else cpu


@rewriter_config("fewshot")
@dataclass(frozen=True)
class FewShotConfig(LMFields):
    """In-context paraphrasing with retrieved demonstrations (Som et al., 2024)."""

    name: str = "fewshot"
    pool: str = "builtin"  # demonstrations: jsonl/csv/tsv (ParaDetox, CAPP or source/target
    #                        columns); `builtin` = detox/data/demos.jsonl
    k: int = 4  # demonstrations per prompt (0 = zero-shot)
    selection: Literal["random", "most_similar", "least_similar"] = "most_similar"
    # order of the chosen demonstrations by similarity to the input: ascending puts the most
    # similar last, next to the input; as_selected keeps selection order (random stays random)
    order: Literal["ascending", "descending", "as_selected"] = "ascending"
    embedder: str = "minilm"  # sentence embedder for retrieval: minilm, a dir/hub id, hashing
    exclude_identical: bool = True  # never show the input itself as a demonstration
    seed: int = 0  # random selection: same input + seed -> same demonstrations, any batching
    index_cache: str | None = None  # where pool embeddings are cached (default LETHE_CACHE)
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self):
        if self.k < 0:
            raise ValueError(f"rewriter.k must be >= 0, got {self.k}")


@rewriter_config("model")
@dataclass(frozen=True)
class ModelConfig(LMFields):
    """Any causal or seq2seq model (plus LoRA adapter), prompted without demonstrations."""

    name: str = "model"
    prompt: PromptConfig = field(default_factory=PromptConfig)


@rewriter_config("best_of_n")
@dataclass(frozen=True)
class BestOfNConfig:
    """Sample n rewrites from `base` and keep the one the recipe's scorers rank highest."""

    name: str = "best_of_n"
    n: int = 8  # sampled candidates per input
    temperature: float = 1.0
    top_p: float = 0.95
    include_greedy: bool = True  # also consider the greedy rewrite (n + 1 candidates)
    # the ranking score is the product of these components (STA soft, SIM to the input, FL)
    rerank: tuple[Literal["sta", "sim", "fl"], ...] = ("sta", "sim", "fl")
    base: Any = registry_field(_base_lookup, _base_names, default_factory=FewShotConfig)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"rewriter.n must be >= 1, got {self.n}")
        if not self.rerank:
            raise ValueError("rewriter.rerank needs at least one of sta, sim, fl")


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


@dataclass(frozen=True)
class RewriteRecipe:
    rewriter: Any = registry_field(_lookup, _names, default_factory=FewShotConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    scorers: ScorersConfig = field(default_factory=ScorersConfig)  # best-of-n ranking, scores
    scores: bool = False  # add per-line {"sta", "sim", "fl"} of each rewrite (`--scores`)
