"""The one model adapter everything in `eval/` talks through.

Two batched operations, so batching, padding, the KV cache and device placement live here only:

- `LM.token_scores(texts)` / `LM.token_logprobs(texts)`: for each text, the log-probability of
  every token given its prefix (the first token has no prefix and is excluded), optionally with
  the mean and standard deviation of log p(z | prefix) over the whole vocabulary (Min-K%++).
  Batches are RIGHT-padded: with a causal mask, real tokens never attend to padding on their
  right and keep positions 0..n-1, so each row computes exactly what it would alone.
- `LM.generate(prompts, max_new_tokens)`: LEFT-padded batched decoding with the KV cache on.
  The attention mask hides the padding and `generate` derives position ids from it
  (cumsum of the mask − 1), so a padded row sees the same positions as when run alone; greedy
  outputs therefore match one-at-a-time decoding (pinned by tests/eval/test_eval_lm.py).
  A token prefix shared by all prompts of a call (KnowMem's in-context examples) is run once
  and its KV cache reused by every batch.

Inside both, inputs are sorted by length (longest first, so memory errors surface on the first
batch) to reduce padding, and results are returned in the caller's order. The device is always
the model's own; nothing here names a device.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from lethe.errors import LetheError

log = logging.getLogger(__name__)

MIN_SHARED_PREFIX = 32  # tokens; below this, caching a common prompt prefix is not worth it


@dataclass(frozen=True)
class TokenScores:
    """Per-token statistics of one text under a model; all arrays have length n_tokens − 1."""

    logprobs: np.ndarray  # (n-1,) log p(x_t | x_<t) for t = 1..n-1
    mean: np.ndarray | None = None  # (n-1,) mu_t = E_{z~p(.|x_<t)} log p(z | x_<t)
    std: np.ndarray | None = None  # (n-1,) sigma_t = sqrt(Var_{z~p(.|x_<t)} log p(z | x_<t))


def _pad_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0  # any id works: padded positions are masked out


def _eos_ids(tokenizer, model) -> list[int]:
    ids = []
    for src in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                tokenizer.eos_token_id):
        if src is None:
            continue
        ids.extend(src if isinstance(src, (list, tuple)) else [src])
    return sorted({int(i) for i in ids})


def _batches(order: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), batch_size):
        yield list(order[start:start + batch_size])


class LM:
    """A causal LM plus its tokenizer, seen through batched scoring and generation.

    `max_length` caps tokens per sequence (default: the model's `max_position_embeddings`);
    longer texts are truncated (scoring keeps the start, generation keeps the end of the
    prompt) with a warning. `progress` shows tqdm bars (they hide themselves off a terminal).
    `prefix_cache` lets `generate` compute a prefix shared by all prompts once.
    """

    def __init__(self, model, tokenizer, *, max_length: int | None = None,
                 progress: bool = True, prefix_cache: bool = True):
        self.model = model
        self.prefix_cache = prefix_cache
        self.tokenizer = tokenizer
        self.max_length = max_length or getattr(getattr(model, "config", None),
                                                "max_position_embeddings", None)
        self.progress = progress

    # -----------------------------------------------------------------------------------------
    @property
    def device(self):
        return next(self.model.parameters()).device

    @contextlib.contextmanager
    def _eval_mode(self):
        """Eval mode + no grad for the duration, restoring the caller's training flag."""
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            if was_training:
                self.model.train()

    def _progress(self, total: int, desc: str | None):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="seq", leave=False,
                    disable=None if self.progress else True)

    def encode(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text (with BOS etc. when the tokenizer adds them)."""
        return [list(ids) for ids in
                self.tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]]

    # -----------------------------------------------------------------------------------------
    # scoring

    def token_logprobs(self, texts: Sequence[str], batch_size: int = 8, *,
                       desc: str | None = None) -> list[np.ndarray]:
        """log p(x_t | x_<t) for t ≥ 1 of each text, as float32 arrays of length n − 1."""
        return [s.logprobs for s in self.token_scores(texts, batch_size, moments=False,
                                                      desc=desc)]

    def token_scores(self, texts: Sequence[str], batch_size: int = 8, *, moments: bool = True,
                     desc: str | None = None) -> list[TokenScores]:
        """Per-token log-probs (and, with `moments`, the vocabulary mean/std of log p)."""
        import torch

        ids = self.encode(texts)
        if self.max_length:
            long = [i for i, x in enumerate(ids) if len(x) > self.max_length]
            if long:
                log.warning("%d text(s) longer than %d tokens were truncated for scoring",
                            len(long), self.max_length)
                ids = [x[:self.max_length] for x in ids]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[TokenScores | None] = [None] * len(ids)
        pad = _pad_id(self.tokenizer)
        device = self.device
        with self._eval_mode(), self._progress(len(ids), desc) as bar:
            for batch in _batches(order, max(1, batch_size)):
                width = len(ids[batch[0]])
                if width < 2:  # nothing to predict in any text of this batch
                    for i in batch:
                        out[i] = _empty_scores(moments)
                    bar.update(len(batch))
                    continue
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                    mask[row, :len(ids[i])] = 1
                input_ids, mask = input_ids.to(device), mask.to(device)
                logits = self.model(input_ids=input_ids, attention_mask=mask,
                                    use_cache=False).logits  # (B, T, V)
                for row, i in enumerate(batch):
                    n = len(ids[i])
                    if n < 2:
                        out[i] = _empty_scores(moments)
                        continue
                    out[i] = _scores_of_row(logits[row, :n - 1], input_ids[row, 1:n], moments)
                bar.update(len(batch))
        return out  # type: ignore[return-value]

    # -----------------------------------------------------------------------------------------
    # generation

    def generate(self, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8, *,
                 greedy: bool = True, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, stop: Sequence[str] | None = None,
                 desc: str | None = None, add_special_tokens: bool = True) -> list[str]:
        """Continuations of `prompts` (without the prompt), cut at the first EOS.

        Greedy by default (what every MUSE metric uses). Sampling (`greedy=False`) draws from a
        forked torch RNG seeded with `seed`, so the caller's global RNG is left untouched.
        `stop`: a row stops generating once its continuation contains one of these strings
        (kept in the output: callers that cut at them get the same text as without `stop`,
        sooner). `add_special_tokens=False` for prompts that already hold them (chat templates).
        """
        import torch
        from transformers import GenerationConfig

        ids = self.encode(prompts, add_special_tokens=add_special_tokens)
        empty = [i for i, x in enumerate(ids) if not x]
        if empty:
            raise LetheError(f"prompt #{empty[0]} is empty after tokenization; generation needs "
                             f"at least one prompt token (or a tokenizer that adds BOS)")
        room = (self.max_length - max_new_tokens) if self.max_length else None
        if room is not None and room < 1:
            room = 1
        if room is not None and any(len(x) > room for x in ids):
            log.warning("prompts longer than %d tokens were cut to their last %d tokens so that "
                        "%d new tokens fit the model's %d positions", room, room, max_new_tokens,
                        self.max_length)
            ids = [x[-room:] for x in ids]
        pad = _pad_id(self.tokenizer)
        eos = _eos_ids(self.tokenizer, self.model)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=not greedy, num_beams=1, use_cache=True,
            temperature=None if greedy else temperature, top_p=None if greedy else top_p,
            top_k=None, pad_token_id=pad, eos_token_id=eos or None,
            stop_strings=list(stop) if stop else None)
        extra = {"tokenizer": self.tokenizer} if stop else {}
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[str | None] = [None] * len(ids)
        device = self.device
        rng = contextlib.nullcontext()
        if not greedy and seed is not None:
            rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
        with self._eval_mode(), rng, self._progress(len(ids), desc) as bar:
            if not greedy and seed is not None:
                torch.manual_seed(seed)
            prefix = self._shared_prefix(ids)
            p = prefix[0] if prefix else 0
            for batch in _batches(order, max(1, batch_size)):
                # Layout of a row: [shared prefix | left padding | rest of the prompt]. The
                # padding is masked, and position ids come from the mask's cumsum, so the rest
                # continues at position p exactly as in the unpadded prompt.
                width = len(ids[batch[0]])
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    rest = ids[i][p:]
                    input_ids[row, :p] = torch.tensor(ids[i][:p], dtype=torch.long)
                    mask[row, :p] = 1
                    input_ids[row, width - len(rest):] = torch.tensor(rest)
                    mask[row, width - len(rest):] = 1
                kwargs = dict(extra)
                if prefix:
                    cache = copy.deepcopy(prefix[1])
                    cache.batch_repeat_interleave(len(batch))
                    kwargs[prefix[2]] = cache
                generated = self.model.generate(input_ids=input_ids.to(device),
                                                attention_mask=mask.to(device),
                                                generation_config=config,
                                                **kwargs)  # (B, width + new)
                for row, i in enumerate(batch):
                    new = generated[row, width:].tolist()
                    cut = next((j for j, t in enumerate(new) if t in eos), len(new))
                    out[i] = self.tokenizer.decode(new[:cut], skip_special_tokens=True)
                bar.update(len(batch))
        return out  # type: ignore[return-value]

    def _shared_prefix(self, ids: list[list[int]]):
        """(length, KV cache, generate's cache kwarg) of the prompts' common token prefix.

        KnowMem prompts share ~10 in-context QA pairs (hundreds of tokens) and differ only in
        the last question: computing that prefix once, instead of once per prompt, removes
        most of the prefill work. Each prompt keeps ≥ 1 token of its own so `generate` has
        something to feed. None when it would not pay off (one prompt, a short prefix) or the
        model's cache cannot be repeated over a batch.
        """
        import torch

        if not self.prefix_cache or len(ids) < 2:
            return None
        first, p = ids[0], 0
        shortest = min(len(x) for x in ids)
        while p < shortest - 1 and all(x[p] == first[p] for x in ids):
            p += 1
        if p < MIN_SHARED_PREFIX:
            return None
        out = self.model(input_ids=torch.tensor([first[:p]], device=self.device),
                         use_cache=True)
        if getattr(out, "cache", None) is not None:  # transformers ≥ 5.2x names it `cache`
            cache, name = out.cache, "cache"
        else:
            cache, name = getattr(out, "past_key_values", None), "past_key_values"
        if cache is None or not hasattr(cache, "batch_repeat_interleave"):
            return None
        return p, cache, name


def _empty_scores(moments: bool) -> TokenScores:
    empty = np.zeros(0, dtype=np.float32)
    return TokenScores(empty, empty if moments else None, empty if moments else None)


def _scores_of_row(logits, targets, moments: bool, chunk: int = 256) -> TokenScores:
    """Statistics for one sequence: `logits` (n-1, V) predict `targets` (n-1,).

    Works in float32 and in chunks of positions, so a long text with a large vocabulary never
    materialises more than (chunk, V) probabilities at once.
    """
    import torch

    lps, means, stds = [], [], []
    for start in range(0, logits.shape[0], chunk):
        logp = torch.log_softmax(logits[start:start + chunk].float(), dim=-1)  # (c, V)
        lps.append(logp.gather(-1, targets[start:start + chunk, None]).squeeze(-1))  # (c,)
        if moments:
            p = logp.exp()
            mu = (p * logp).sum(-1)  # (c,) E_p[log p]
            second = (p * logp.square()).sum(-1)  # (c,) E_p[(log p)^2]
            means.append(mu)
            stds.append((second - mu.square()).clamp_min(0).sqrt())
    cat = lambda xs: torch.cat(xs).cpu().numpy().astype(np.float32)  # noqa: E731
    return TokenScores(cat(lps), cat(means) if moments else None, cat(stds) if moments else None)
