"""The one model adapter: every forward pass Lethe makes outside a training step goes through here.

Batching, padding, the KV cache, device choice and adapter merging live here only, so that
evaluation (`eval/`), the extraction attacks, ROME's edits, the detox rewriters and scorers and
the training code's evaluations compute the same thing the same way.

- Padding: `pad_right` / `pad_left` build (B, T) ids and an attention mask; `pad_id` and
  `eos_ids` say which ids to use. Right padding keeps each row's positions 0..n-1 (scoring,
  training batches); left padding puts every row's last token at -1 (generation).
- Tokenising facts: `encode_prompt` / `encode_pair` / `leading_space_tokens` fix the
  prompt/answer boundary once for the attacks, the editing metrics and ROME.
- Devices: `pick_device("auto")` is cuda (this rank's, under a launcher) > mps > cpu;
  `load_for_inference` loads a model (an adapter directory merged into its base) onto it.
- `LM`: two batched operations.
  * `LM.token_scores(texts)` / `LM.score_ids(ids)`: the log-probability of every token given
    its prefix (the first token has no prefix and is excluded), optionally with the mean and
    standard deviation of log p(z | prefix) over the vocabulary (Min-K%++) and whether the
    token is the argmax (greedy decoding would produce it). Batches are RIGHT-padded: with a
    causal mask, real tokens never attend to padding on their right and keep positions 0..n-1,
    so each row computes exactly what it would alone.
  * `LM.generate(prompts)` / `LM.generate_ids(ids)`: LEFT-padded batched decoding with the KV
    cache on. The attention mask hides the padding and `generate` derives position ids from
    it (cumsum of the mask − 1), so a padded row sees the same positions as when run alone;
    greedy outputs therefore match one-at-a-time decoding (pinned by tests/eval/test_eval_lm.py).
    A token prefix shared by all prompts of a call (KnowMem's in-context examples, a chat
    template's system turn) is run once and its KV cache reused by every batch.

Inside both, inputs are sorted by length (longest first, so memory errors surface on the first
batch) to reduce padding, and results are returned in the caller's order. The device is always
the model's own; nothing here names a device except `pick_device`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from lethe.errors import LetheError

log = logging.getLogger(__name__)

MIN_SHARED_PREFIX = 32  # tokens; below this, caching a common prompt prefix is not worth it
MIN_FILL = 0.9  # a scoring batch holds sequences of at least this share of its longest one


# ---------------------------------------------------------------------------------------------
# devices and loading


def pick_device(name: str = "auto"):
    """The torch device `name` names; `auto` = cuda (cuda:LOCAL_RANK under a launcher, so each
    rank uses its own accelerator) > mps > cpu."""
    import torch

    if name != "auto":
        try:
            return torch.device(name)
        except RuntimeError:
            raise LetheError(f"device '{name}' is not a torch device (use auto, cpu, cuda, "
                             f"cuda:1, mps)") from None
    if torch.cuda.is_available():
        rank = os.environ.get("LOCAL_RANK")
        return torch.device(f"cuda:{rank}" if rank is not None else "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model):
    return next(model.parameters()).device


def load_for_inference(spec: str, *, dtype: str | None = "auto", device: str = "auto",
                       revision: str | None = None, adapter: str | None = None,
                       merge_adapter: bool = True, task: str = "causal-lm",
                       trust_remote_code: bool = False):
    """A model for inference: loaded by `lethe.loading.load_model` (an adapter directory, or
    `adapter`, merged into its base by default: one matrix per layer instead of two, and the
    same weights an exported checkpoint has), moved to `pick_device(device)`, in eval mode."""
    from lethe.loading import load_model

    model = load_model(spec, dtype=dtype, revision=revision, adapter=adapter,
                       merge_adapter=merge_adapter, task=task,
                       trust_remote_code=trust_remote_code)
    return model.to(pick_device(device)).eval()


# ---------------------------------------------------------------------------------------------
# ids and padding


def pad_id(tokenizer) -> int:
    """The id padded positions get: pad, else EOS, else 0 (any id works: they are masked)."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def eos_ids(tokenizer, model) -> list[int]:
    """Every id that ends a generation: the model's generation config's and the tokenizer's."""
    ids = []
    for src in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                tokenizer.eos_token_id):
        if src is None:
            continue
        ids.extend(src if isinstance(src, (list, tuple)) else [src])
    return sorted({int(i) for i in ids})


def _padded(seqs: Sequence[Sequence[int]], pad: int, device, left: bool):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)  # (B, T)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span] = torch.tensor(list(s), dtype=torch.long)
        mask[i, span] = 1
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask


def pad_right(seqs: Sequence[Sequence[int]], pad: int, device=None):
    """Right-padded (B, T) input ids and attention mask (row i holds seqs[i] at 0..n_i-1)."""
    return _padded(seqs, pad, device, left=False)


def pad_left(seqs: Sequence[Sequence[int]], pad: int, device=None):
    """Left-padded (B, T) input ids and attention mask (every row's last token at T-1)."""
    return _padded(seqs, pad, device, left=True)


def _strip_trailing_special(ids: list[int], special: set[int]) -> list[int]:
    while ids and ids[-1] in special:
        ids = ids[:-1]
    return ids


def encode_prompt(tok, prompt: str) -> list[int]:
    """Token ids of a prompt as a model reads it before its answer (no trailing EOS)."""
    special = set(getattr(tok, "all_special_ids", []) or [])
    return _strip_trailing_special(list(tok(prompt)["input_ids"]), special)


def encode_pair(tok, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of `prompt` (with the tokenizer's usual special tokens) and of `answer` as
    the continuation of the prompt.

    The answer is separated by one space unless the prompt ends (or the answer starts) with
    whitespace. Tokenising prompt+answer together and splitting at the prompt's length keeps
    the ids a model would see when reading the whole sentence; when the boundary tokens merge
    (the joint ids do not start with the prompt's ids) the answer is tokenised on its own.
    """
    if not answer or not answer.strip():
        raise LetheError(f"empty answer for prompt {prompt!r}; every fact needs a non-empty target")
    sep = "" if (not prompt or prompt[-1].isspace() or answer[0].isspace()) else " "
    special = set(getattr(tok, "all_special_ids", []) or [])
    p_ids = encode_prompt(tok, prompt)
    full = _strip_trailing_special(list(tok(prompt + sep + answer)["input_ids"]), special)
    if len(full) > len(p_ids) and full[:len(p_ids)] == p_ids:
        return p_ids, full[len(p_ids):]
    a_ids = list(tok(sep + answer, add_special_tokens=False)["input_ids"])
    if not a_ids:
        raise LetheError(f"answer {answer!r} tokenises to nothing; check the tokenizer")
    return p_ids, a_ids


def leading_space_tokens(tok, answer_ids: Sequence[int]) -> int:
    """How many leading answer tokens are whitespace only (never the last one).

    A tokenizer that makes every whitespace character its own token (Lethe's prepared models)
    starts the answer " Vessmark" with a lone space, which the model predicts with p ~ 1 after
    any prompt. It carries formatting, not the fact: the white-box attacks and the deletion
    defenses look at the first token after it, read at the position after it. GPT-2-style
    and SentencePiece answers start with " Vess"/"▁Vess": 0 here, nothing changes for them.
    """
    n = 0
    while n < len(answer_ids) - 1 and not tok.decode([answer_ids[n]]).strip():
        n += 1
    return n


def _batches(order: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), max(1, batch_size)):
        yield list(order[start:start + max(1, batch_size)])


def longest_first(ids: Sequence[Sequence[int]]) -> list[int]:
    """Indices of `ids` by decreasing length (stable: ties keep the caller's order)."""
    return sorted(range(len(ids)), key=lambda i: -len(ids[i]))


def length_batches(ids: Sequence[Sequence[int]], batch_size: int,
                   fill: float = MIN_FILL) -> Iterator[list[int]]:
    """Batches of at most `batch_size` indices, longest first, each closed early when the next
    sequence is shorter than `fill` × the batch's width.

    For scoring, every row of a right-padded batch costs as much as its longest one (the
    linear layers see width tokens per row, attention width² with an explicit mask), so a
    batch of texts whose lengths spread widely spends most of its time on padding: the demo
    world's PrivLeak texts (119-327 tokens) took twice as long in one batch of 24 as one at
    a time. Rows within `fill` of the width waste at most 1 − fill of a batch.
    """
    batch: list[int] = []
    for i in longest_first(ids):
        if batch and (len(batch) >= max(1, batch_size)
                      or len(ids[i]) < fill * len(ids[batch[0]])):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------
# per-token statistics


@dataclass(frozen=True)
class TokenScores:
    """Per-token statistics of one text under a model; all arrays have length n_tokens − 1."""

    logprobs: np.ndarray  # (n-1,) log p(x_t | x_<t) for t = 1..n-1
    mean: np.ndarray | None = None  # (n-1,) mu_t = E_{z~p(.|x_<t)} log p(z | x_<t)
    std: np.ndarray | None = None  # (n-1,) sigma_t = sqrt(Var_{z~p(.|x_<t)} log p(z | x_<t))
    argmax: np.ndarray | None = None  # (n-1,) bool: x_t is the argmax of p(. | x_<t)


def _empty_scores(moments: bool, argmax: bool) -> TokenScores:
    empty = np.zeros(0, dtype=np.float32)
    return TokenScores(empty, empty if moments else None, empty if moments else None,
                       np.zeros(0, dtype=bool) if argmax else None)


def _scores_of_row(logits, targets, moments: bool, argmax: bool = False,
                   chunk: int = 256) -> TokenScores:
    """Statistics for one sequence: `logits` (n-1, V) predict `targets` (n-1,).

    Works in float32 and in chunks of positions, so a long text with a large vocabulary never
    materialises more than (chunk, V) probabilities at once.
    """
    import torch

    lps, means, stds, hits = [], [], [], []
    for start in range(0, logits.shape[0], chunk):
        part, tgt = logits[start:start + chunk].float(), targets[start:start + chunk]  # (c, V)
        logp = torch.log_softmax(part, dim=-1)  # (c, V)
        lps.append(logp.gather(-1, tgt[:, None]).squeeze(-1))  # (c,)
        if argmax:
            hits.append(part.argmax(-1) == tgt)  # (c,)
        if moments:
            p = logp.exp()
            mu = (p * logp).sum(-1)  # (c,) E_p[log p]
            second = (p * logp.square()).sum(-1)  # (c,) E_p[(log p)^2]
            means.append(mu)
            stds.append((second - mu.square()).clamp_min(0).sqrt())
    cat = lambda xs: torch.cat(xs).cpu().numpy().astype(np.float32)  # noqa: E731
    return TokenScores(cat(lps), cat(means) if moments else None, cat(stds) if moments else None,
                       torch.cat(hits).cpu().numpy() if argmax else None)


# ---------------------------------------------------------------------------------------------
# the adapter


class LM:
    """A causal LM plus its tokenizer, seen through batched scoring and generation.

    `max_length` caps tokens per sequence (default: the model's `max_position_embeddings`);
    longer texts are truncated (scoring keeps the start, generation keeps the end of the
    prompt) with a warning. `progress` shows tqdm bars (they hide themselves off a terminal).
    `prefix_cache` lets `generate` compute a prefix shared by all prompts once.
    """

    def __init__(self, model, tokenizer, *, max_length: int | None = None,
                 progress: bool = True, prefix_cache: bool = True, fill: float = MIN_FILL):
        self.model = model
        self.fill = fill  # scoring batches: see `length_batches`
        self.prefix_cache = prefix_cache
        self.tokenizer = tokenizer
        self.max_length = max_length or getattr(getattr(model, "config", None),
                                                "max_position_embeddings", None)
        self.progress = progress

    @classmethod
    def load(cls, spec: str, *, dtype: str | None = "auto", device: str = "auto",
             revision: str | None = None, adapter: str | None = None,
             trust_remote_code: bool = False, **kwargs) -> "LM":
        """`spec` (hub id, directory, GGUF, alias, adapter directory) ready for inference."""
        from lethe.loading import load_tokenizer

        model = load_for_inference(spec, dtype=dtype, device=device, revision=revision,
                                   adapter=adapter, trust_remote_code=trust_remote_code)
        tok = load_tokenizer(spec, revision=revision, trust_remote_code=trust_remote_code)
        return cls(model, tok, **kwargs)

    @property
    def device(self):
        return model_device(self.model)

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
        return self.score_ids(self._scoring_ids(texts), batch_size, moments=moments, desc=desc)

    def _scoring_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of `texts`, each cut to `max_length` (with a warning) for scoring."""
        ids = self.encode(texts)
        if self.max_length:
            long = [i for i, x in enumerate(ids) if len(x) > self.max_length]
            if long:
                log.warning("%d text(s) longer than %d tokens were truncated for scoring",
                            len(long), self.max_length)
                ids = [x[:self.max_length] for x in ids]
        return ids

    def grad_norms(self, texts: Sequence[str], p: float = 2.0, *,
                   desc: str | None = None) -> list[float]:
        """GradNorm of each text: the mean over parameter tensors W of ‖∇_W L‖_p, L the mean
        next-token NLL of the text (membership inference, eval.attacks.mia `gradnorm`).

        One text per backward pass (per-example gradients), in eval mode (no dropout, so the
        value is deterministic); `torch.autograd.grad` leaves the parameters' `.grad` untouched
        and every parameter's `requires_grad` is restored afterwards."""
        import torch
        import torch.nn.functional as F

        params = list(self.model.parameters())
        flags = [q.requires_grad for q in params]
        was_training = self.model.training
        out: list[float] = []
        try:
            self.model.eval()
            for q in params:
                q.requires_grad_(True)
            with torch.enable_grad(), self._progress(len(texts), desc) as bar:
                for seq in self._scoring_ids(texts):
                    if len(seq) < 2:
                        raise ValueError("no token log-probs (a text needs at least two tokens)")
                    x = torch.tensor([seq], device=self.device)  # (1, n)
                    logits = self.model(input_ids=x, use_cache=False).logits[0, :-1]  # (n-1, V)
                    loss = F.cross_entropy(logits.float(), x[0, 1:])
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
                    norms = [g.float().norm(p) for g in grads if g is not None]
                    out.append(float(torch.stack(norms).mean()))
                    bar.update(1)
        finally:
            for q, flag in zip(params, flags):
                q.requires_grad_(flag)
            self.model.train(was_training)
        return out

    def score_ids(self, ids: Sequence[Sequence[int]], batch_size: int = 8, *,
                  moments: bool = False, argmax: bool = False,
                  desc: str | None = None) -> list[TokenScores]:
        """`token_scores` of token-id sequences; `argmax` adds whether each token is greedy."""
        out: list[TokenScores | None] = [None] * len(ids)
        pad = pad_id(self.tokenizer)
        with self._eval_mode(), self._progress(len(ids), desc) as bar:
            for batch in length_batches(ids, batch_size, self.fill):
                if len(ids[batch[0]]) < 2:  # nothing to predict in any text of this batch
                    for i in batch:
                        out[i] = _empty_scores(moments, argmax)
                else:
                    input_ids, mask = pad_right([ids[i] for i in batch], pad, self.device)
                    logits = self.model(input_ids=input_ids, attention_mask=mask,
                                        use_cache=False).logits  # (B, T, V)
                    for row, i in enumerate(batch):
                        n = len(ids[i])
                        out[i] = (_scores_of_row(logits[row, :n - 1], input_ids[row, 1:n],
                                                 moments, argmax) if n >= 2
                                  else _empty_scores(moments, argmax))
                bar.update(len(batch))
        return out  # type: ignore[return-value]

    # -----------------------------------------------------------------------------------------
    # generation

    def generate(self, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8, *,
                 add_special_tokens: bool = True, **kwargs) -> list[str]:
        """Continuations of `prompts` (without the prompt), cut at the first EOS.

        `add_special_tokens=False` for prompts that already hold them (chat templates); the
        other options are `generate_ids`'.
        """
        ids = self.encode(prompts, add_special_tokens=add_special_tokens)
        return self.generate_ids(ids, max_new_tokens, batch_size, **kwargs)

    def generate_ids(self, ids: Sequence[Sequence[int]], max_new_tokens: int,
                     batch_size: int = 8, *, greedy: bool = True, temperature: float = 1.0,
                     top_p: float = 1.0, seed: int | None = None,
                     stop: Sequence[str] | None = None, desc: str | None = None) -> list[str]:
        """Continuations of tokenised prompts, cut at the first EOS.

        Greedy by default (what every MUSE metric uses). Sampling (`greedy=False`) draws from a
        forked torch RNG seeded with `seed` (the caller's global RNG is then left untouched;
        without `seed` it draws from the global RNG). `stop`: a row stops generating once its
        continuation contains one of these strings (kept in the output: callers that cut at
        them get the same text as without `stop`, sooner).
        """
        import torch

        ids = self._fit_prompts(ids, max_new_tokens)
        config = self._generation_config(max_new_tokens, greedy, temperature, top_p, stop)
        out: list[str | None] = [None] * len(ids)
        rng = contextlib.nullcontext()
        seeded = not greedy and seed is not None
        if seeded:
            device = self.device
            rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
        with self._eval_mode(), rng, self._progress(len(ids), desc) as bar:
            if seeded:
                torch.manual_seed(seed)
            prefix = self._shared_prefix(ids)
            for batch in _batches(longest_first(ids), batch_size):
                texts = self._generate_batch([ids[i] for i in batch], config, prefix, stop)
                for i, text in zip(batch, texts):
                    out[i] = text
                bar.update(len(batch))
        return out  # type: ignore[return-value]

    def _fit_prompts(self, ids: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """Refuse empty prompts; keep the end of prompts too long for `max_new_tokens` more."""
        ids = [list(x) for x in ids]
        empty = [i for i, x in enumerate(ids) if not x]
        if empty:
            raise LetheError(f"prompt #{empty[0]} is empty after tokenization; generation needs "
                             f"at least one prompt token (or a tokenizer that adds BOS)")
        room = max(1, self.max_length - max_new_tokens) if self.max_length else None
        if room is not None and any(len(x) > room for x in ids):
            log.warning("prompts longer than %d tokens were cut to their last %d tokens so that "
                        "%d new tokens fit the model's %d positions", room, room, max_new_tokens,
                        self.max_length)
            ids = [x[-room:] for x in ids]
        return ids

    def _generation_config(self, max_new_tokens, greedy, temperature, top_p, stop):
        from transformers import GenerationConfig

        eos = eos_ids(self.tokenizer, self.model)
        return GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=not greedy, num_beams=1, use_cache=True,
            temperature=None if greedy else temperature, top_p=None if greedy else top_p,
            top_k=None, pad_token_id=pad_id(self.tokenizer), eos_token_id=eos or None,
            stop_strings=list(stop) if stop else None)

    def _generate_batch(self, rows: list[list[int]], config, prefix, stop) -> list[str]:
        """Decode one batch. Layout of a row: [shared prefix | left padding | rest of the
        prompt]. The padding is masked, and position ids come from the mask's cumsum, so the
        rest continues at position p exactly as in the unpadded prompt."""
        import torch

        p = prefix[0] if prefix else 0
        width = len(rows[0])  # rows are sorted longest first
        pad = pad_id(self.tokenizer)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, width)
        mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, width)
        for r, row in enumerate(rows):
            rest = row[p:]
            input_ids[r, :p] = torch.tensor(row[:p], dtype=torch.long)
            mask[r, :p] = 1
            input_ids[r, width - len(rest):] = torch.tensor(rest)
            mask[r, width - len(rest):] = 1
        kwargs = {"tokenizer": self.tokenizer} if stop else {}
        kwargs.update(self._batch_cache(len(rows), width + config.max_new_tokens, prefix))
        device = self.device
        generated = self.model.generate(input_ids=input_ids.to(device),
                                        attention_mask=mask.to(device),
                                        generation_config=config, **kwargs)  # (B, width + new)
        eos = set(eos_ids(self.tokenizer, self.model))
        texts = []
        for r in range(len(rows)):
            new = generated[r, width:].tolist()
            cut = next((j for j, t in enumerate(new) if t in eos), len(new))
            texts.append(self.tokenizer.decode(new[:cut], skip_special_tokens=True))
        return texts

    def _batch_cache(self, batch: int, capacity: int, prefix) -> dict:
        """generate's cache argument for one batch: a cache written in place (lethe.kvcache)
        holding the shared prefix, if any; else a copy of the prefix's own cache; else none."""
        from lethe.kvcache import cache_kwarg, preallocated_cache

        cache = preallocated_cache(self.model, batch, capacity, prefix[1] if prefix else None)
        if cache is not None:
            return {prefix[2] if prefix else cache_kwarg(self.model): cache}
        if prefix:
            cache = copy.deepcopy(prefix[1])
            cache.batch_repeat_interleave(batch)
            return {prefix[2]: cache}
        return {}

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

