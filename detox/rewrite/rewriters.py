"""What every rewriter shares: the interface, the language model, and prompting.

    rewriter.rewrite(items: list[Item]) -> list[Rewrite]      # one Rewrite per Item, in order

`build_rewriter(cfg, recipe, scorers)` asks the config for its rewriter (`cfg.build`); the
rewriters themselves are one module each (fewshot.py, model.py, best_of_n.py).

Generation is batched with left padding (causal LMs, through `lethe.lm.LM`), so a batch of B
inputs costs about one forward per new token instead of B; under greedy decoding the outputs
equal one-at-a-time generation (checked by tests/bench/bench_detox_batching.py). The inputs of
one call are tokenised once and sorted by prompt length before they are cut into batches:
few-shot prompts vary in length with their retrieved demonstrations, and every prompt in a
batch is padded to the longest, so unsorted batches spend part of the prefill - the cost
batching cannot share - on padding.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from detox.rewrite.prompts import PromptBuilder
from detox.rewrite.recipe import LMFields, RewriteRecipe
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


def build_rewriter(cfg, recipe: RewriteRecipe, scorers=None) -> Rewriter:
    """The rewriter `cfg` describes; `scorers` (eval.detox.scorers.Scorers) for best-of-n."""
    build = getattr(cfg, "build", None)
    if build is None:
        raise LetheError(f"rewriter {type(cfg).__name__} has no build(recipe, scorers) method")
    return build(recipe, scorers)


# ---------------------------------------------------------------------------------------------
# the language model


class LM:
    """A causal or seq2seq model + tokenizer doing batched generation."""

    def __init__(self, cfg: LMFields):
        from lethe.lm import LM as CausalLM, load_for_inference
        from lethe.loading import load_tokenizer

        self.spec = cfg.model
        self.seq2seq = self._is_seq2seq(cfg)
        self.tokenizer = load_tokenizer(cfg.model, padding_side="right" if self.seq2seq
                                        else "left")
        self.model = load_for_inference(cfg.model, dtype=cfg.dtype, adapter=cfg.adapter_path,
                                        merge_adapter=cfg.merge_adapter, device=cfg.device,
                                        task="seq2seq" if self.seq2seq else "causal-lm")
        self.causal = None if self.seq2seq else CausalLM(self.model, self.tokenizer,
                                                         progress=False)

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

    def encode(self, prompts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [list(ids) for ids in self.tokenizer(
            list(prompts), add_special_tokens=add_special_tokens)["input_ids"]]

    def generate(self, prompts: Sequence[str], max_new_tokens: int, *, n: int = 1,
                 sampling: dict | None = None, stop_at_newline: bool = False,
                 add_special_tokens: bool = True, ids: Sequence[Sequence[int]] | None = None
                 ) -> list[list[str]]:
        """n generations per prompt (greedy unless `sampling` gives temperature/top_p).

        Causal LMs go through lethe.lm.LM: left padding, and the token prefix all prompts of
        the call share (the chat template's system turn with the instruction) run once, its KV
        cache reused by every row. `ids`: the prompts already tokenised (with
        `add_special_tokens`). Sampling draws from the global torch RNG (the caller seeds it).
        """
        if self.seq2seq:
            return self._generate_seq2seq(prompts, max_new_tokens, n, sampling,
                                          add_special_tokens)
        ids = ids if ids is not None else self.encode(prompts, add_special_tokens)
        flat = [x for x in ids for _ in range(n)]
        texts = self.causal.generate_ids(
            flat, max_new_tokens, batch_size=len(flat), greedy=not sampling,
            temperature=(sampling or {}).get("temperature", 1.0),
            top_p=(sampling or {}).get("top_p", 1.0), stop=["\n"] if stop_at_newline else None)
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _generate_seq2seq(self, prompts, max_new_tokens, n, sampling, add_special_tokens):
        import torch

        tok = self.tokenizer
        enc = tok(list(prompts), return_tensors="pt", padding=True,
                  add_special_tokens=add_special_tokens).to(next(self.model.parameters()).device)
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
# prompting


class PromptRewriter:
    """Prompt an LM (with retrieved demonstrations when a selector is given) and clean the output.

    Serves both the `fewshot` and the `model` rewriter; the latter has no selector.
    """

    def __init__(self, lm: LM, builder: PromptBuilder, max_new_tokens: int,
                 selector=None, seed: int = 0, batch_size: int = 32):
        self.lm = lm
        self.builder = builder
        self.selector = selector  # detox.rewrite.fewshot.DemoSelector or None
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
        ids = [list(x) for x in self.lm.tokenizer(prompts, add_special_tokens=special)[
            "input_ids"]]
        # The batches are chosen here, not inside lethe.lm.LM (which also sorts, but only within
        # the prompts it is given): the seq2seq path and the per-batch sampling seed need them.
        order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))  # stable: ties keep order
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
                                   add_special_tokens=special, ids=[ids[i] for i in idx])
            for i, group in zip(idx, raw):
                out[i] = [self.builder.clean(t) for t in group]
        return out

    def rewrite(self, items: Sequence[Item]) -> list[Rewrite]:
        return [Rewrite(c[0]) for c in self.candidates(items)]


def prompt_rewriter(cfg, recipe: RewriteRecipe, selector_for=None) -> PromptRewriter:
    """A PromptRewriter for an LMFields config with a `prompt:` section; `selector_for(cfg)`
    gives its demonstration selector (None: no demonstrations)."""
    lm = LM(cfg)
    builder = PromptBuilder(cfg.prompt, lm.tokenizer, resolve_format(cfg.prompt.format, lm))
    selector = selector_for(cfg) if selector_for else None
    return PromptRewriter(lm, builder, recipe.generation.max_new_tokens, selector,
                          recipe.generation.seed, recipe.generation.batch_size)


def add_scores(results: list[Rewrite], items: Sequence[Item], scorers,
               names: Sequence[str] = ("sta", "sim", "fl")) -> None:
    """Fill each result's missing components (in place) with one batched call per scorer."""
    missing = [n for n in names if any(n not in r.scores for r in results)]
    comps = scorers.components(missing, [r.text for r in results], [it.text for it in items])
    for i, r in enumerate(results):
        for name in missing:
            r.scores.setdefault(name, comps[name][i])
        r.scores = {k: r.scores[k] for k in names if k in r.scores}
