"""Rewriters: few-shot | model (+LoRA) | best-of-n, behind one small interface.

    rewriter.rewrite(items: list[Item]) -> list[Rewrite]      # one Rewrite per Item, in order

`build_rewriter(cfg, recipe, scorers)` looks the config's class up in BUILDERS (filled by
`@builds(ConfigClass)` below), so adding a rewriter is one config dataclass in detox/recipe.py
plus one builder here.

Generation is batched with left padding (causal LMs), so a batch of B inputs costs about one
forward per new token instead of B; under greedy decoding the outputs equal one-at-a-time
generation (checked by tests/bench/bench_detox_batching.py). The inputs of one call are sorted
by prompt length before they are cut into batches: few-shot prompts vary in length with their
retrieved demonstrations, and every prompt in a batch is padded to the longest, so unsorted
batches spend part of the prefill - the cost batching cannot share - on padding.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

from detox.fewshot import DemoSelector, PromptBuilder, load_pool
from detox.recipe import BestOfNConfig, FewShotConfig, LMFields, ModelConfig, RewriteRecipe
from lethe.errors import LetheError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    text: str
    context: tuple[str, ...] = ()


@dataclass
class Rewrite:
    text: str
    scores: dict[str, float] = field(default_factory=dict)  # filled by best-of-n / --scores


class Rewriter(Protocol):
    def rewrite(self, items: Sequence[Item]) -> list[Rewrite]:
        ...


# ---------------------------------------------------------------------------------------------
# the language model


class LM:
    """A causal or seq2seq model + tokenizer doing batched generation."""

    def __init__(self, cfg: LMFields):
        from lethe.loading import load_model, load_tokenizer
        from eval.detox.registry import resolve_device

        self.spec = cfg.model
        self.seq2seq = self._is_seq2seq(cfg)
        task = "seq2seq" if self.seq2seq else "causal-lm"
        self.tokenizer = load_tokenizer(cfg.model, padding_side="right" if self.seq2seq
                                        else "left")
        model = load_model(cfg.model, dtype=cfg.dtype, adapter=cfg.adapter,
                           merge_adapter=cfg.merge_adapter, task=task)
        self.model = model.to(resolve_device(cfg.device)).eval()

    @staticmethod
    def _is_seq2seq(cfg: LMFields) -> bool:
        if cfg.task != "auto":
            return cfg.task == "seq2seq"
        from transformers import AutoConfig

        from lethe.loading import local_checkpoint, resolve_model

        src = resolve_model(cfg.model)
        path = src.base if src.kind == "adapter" else cfg.model
        try:
            return bool(AutoConfig.from_pretrained(local_checkpoint(path)).is_encoder_decoder)
        except (OSError, ValueError):
            return False  # load_model reports the real problem with one line

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def generate(self, prompts: Sequence[str], max_new_tokens: int, *, n: int = 1,
                 sampling: dict | None = None, stop_at_newline: bool = False,
                 add_special_tokens: bool = True) -> list[list[str]]:
        """n generations per prompt (greedy unless `sampling` gives temperature/top_p).

        Causal LMs go through eval.lm.LM.generate: left padding, and the token prefix all
        prompts of the call share (the chat template's system turn with the instruction) run
        once, its KV cache reused by every row. Sampling draws from the global torch RNG (the
        caller seeds it).
        """
        import torch

        tok = self.tokenizer
        if not self.seq2seq:
            from eval.lm import LM as EvalLM

            flat = [p for p in prompts for _ in range(n)]
            texts = EvalLM(self.model, tok, progress=False).generate(
                flat, max_new_tokens, batch_size=len(flat), greedy=not sampling,
                temperature=(sampling or {}).get("temperature", 1.0),
                top_p=(sampling or {}).get("top_p", 1.0),
                stop=["\n"] if stop_at_newline else None, add_special_tokens=add_special_tokens)
            return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
        device = next(self.model.parameters()).device
        enc = tok(list(prompts), return_tensors="pt", padding=True,
                  add_special_tokens=add_special_tokens).to(device)
        kwargs = dict(max_new_tokens=max_new_tokens, num_return_sequences=n,
                      pad_token_id=tok.pad_token_id)
        if sampling:
            kwargs.update(do_sample=True, temperature=sampling["temperature"],
                          top_p=sampling["top_p"])
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)  # (B * n, T_new): decoder tokens only
        texts = tok.batch_decode(out, skip_special_tokens=True)
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]


def resolve_format(fmt: str, lm: LM) -> str:
    if fmt != "auto":
        return fmt
    if lm.seq2seq:
        return "raw"
    return "chat" if lm.has_chat_template else "plain"


# ---------------------------------------------------------------------------------------------
# rewriters


class PromptRewriter:
    """Prompt an LM (with retrieved demonstrations when a selector is given) and clean the output.

    Serves both the `fewshot` and the `model` rewriter; the latter has no selector.
    """

    def __init__(self, lm: LM, builder: PromptBuilder, max_new_tokens: int,
                 selector: DemoSelector | None = None, seed: int = 0, batch_size: int = 32):
        self.lm = lm
        self.builder = builder
        self.selector = selector
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.batch_size = batch_size  # prompts per generate() call

    def prompts(self, items: Sequence[Item]) -> list[str]:
        if self.selector is not None:
            demos = self.selector.select([it.text for it in items])
        else:
            demos = [[] for _ in items]
        return [self.builder.build(it.text, it.context, d) for it, d in zip(items, demos)]

    def candidates(self, items: Sequence[Item], n: int = 1, sampling: dict | None = None,
                   prompts: list[str] | None = None) -> list[list[str]]:
        """n cleaned generations per item (greedy for n=1 without sampling)."""
        import torch

        if not items:
            return []
        prompts = prompts if prompts is not None else self.prompts(items)
        fmt = self.builder.fmt
        special = fmt != "chat"  # chat templates already hold the special tokens
        lengths = [len(ids) for ids in self.lm.tokenizer(
            prompts, add_special_tokens=special)["input_ids"]]
        # The batches are chosen here, not inside LM.generate (which also sorts, but only within
        # the prompts it is given): the seq2seq path and the per-batch sampling seed need them.
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # stable: ties keep order
        out: list[list[str]] = [[] for _ in prompts]
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = [prompts[i] for i in idx]
            if sampling:
                # Seed from the batch's content: a rerun (or resumed run) samples the same
                # candidates.
                digest = hashlib.blake2b("\x00".join(batch).encode(), digest_size=8).digest()
                torch.manual_seed((self.seed * 1_000_003 + int.from_bytes(digest, "little"))
                                  % (2 ** 63))
            raw = self.lm.generate(batch, self.max_new_tokens, n=n, sampling=sampling,
                                   stop_at_newline=fmt == "plain" and self.builder.cfg.first_line,
                                   add_special_tokens=special)
            for i, group in zip(idx, raw):
                out[i] = [self.builder.clean(t) for t in group]
        return out

    def rewrite(self, items: Sequence[Item]) -> list[Rewrite]:
        return [Rewrite(c[0]) for c in self.candidates(items)]


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


def add_scores(results: list[Rewrite], items: Sequence[Item], scorers,
               names: Sequence[str] = ("sta", "sim", "fl")) -> None:
    """Fill each result's missing components (in place) with one batched call per scorer."""
    missing = [n for n in names if any(n not in r.scores for r in results)]
    comps = scorers.components(missing, [r.text for r in results], [it.text for it in items])
    for i, r in enumerate(results):
        for name in missing:
            r.scores.setdefault(name, comps[name][i])
        r.scores = {k: r.scores[k] for k in names if k in r.scores}


# ---------------------------------------------------------------------------------------------
# the registry of builders


BUILDERS: dict[type, Callable] = {}


def builds(config_cls: type):
    def deco(fn):
        BUILDERS[config_cls] = fn
        return fn

    return deco


def build_rewriter(cfg, recipe: RewriteRecipe, scorers=None) -> Rewriter:
    """The rewriter `cfg` describes; `scorers` (eval.detox.scorers.Scorers) for best-of-n."""
    builder = BUILDERS.get(type(cfg))
    if builder is None:
        raise LetheError(f"no rewriter is registered for {type(cfg).__name__}")
    return builder(cfg, recipe, scorers)


def _prompt_rewriter(cfg, recipe: RewriteRecipe, selector_for: Callable | None) -> PromptRewriter:
    lm = LM(cfg)
    fmt = resolve_format(cfg.prompt.format, lm)
    builder = PromptBuilder(cfg.prompt, lm.tokenizer, fmt)
    selector = selector_for(cfg) if selector_for else None
    return PromptRewriter(lm, builder, recipe.generation.max_new_tokens, selector,
                          recipe.generation.seed, recipe.generation.batch_size)


def make_selector(cfg: FewShotConfig) -> DemoSelector | None:
    if cfg.k == 0:
        return None
    from eval.detox.similarity import make_embedder
    from lethe.loading import cache_dir

    demos = load_pool(cfg.pool)
    embedder = make_embedder(cfg.embedder, device=cfg.device)
    index_dir = Path(cfg.index_cache) if cfg.index_cache else cache_dir() / "detox-index"
    return DemoSelector(demos, cfg.k, cfg.selection, cfg.order, embedder, index_dir, cfg.seed,
                        cfg.exclude_identical)


@builds(FewShotConfig)
def _fewshot(cfg: FewShotConfig, recipe: RewriteRecipe, scorers=None) -> PromptRewriter:
    if cfg.k > 0 and cfg.prompt.format == "raw":
        raise LetheError("rewriter.prompt.format=raw cannot show demonstrations; use chat or "
                         "plain, or set rewriter.k=0")
    return _prompt_rewriter(cfg, recipe, make_selector)


@builds(ModelConfig)
def _model(cfg: ModelConfig, recipe: RewriteRecipe, scorers=None) -> PromptRewriter:
    return _prompt_rewriter(cfg, recipe, None)


@builds(BestOfNConfig)
def _best_of_n(cfg: BestOfNConfig, recipe: RewriteRecipe, scorers=None) -> BestOfN:
    if scorers is None:
        raise LetheError("best_of_n needs scorers (the recipe's scorers: section)")
    base = build_rewriter(cfg.base, recipe, scorers)
    if not isinstance(base, PromptRewriter):
        raise LetheError("best_of_n.base must be a fewshot or model rewriter")
    return BestOfN(base, cfg, scorers)
