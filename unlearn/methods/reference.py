"""The frozen starting model ("reference") without a second full copy where avoidable.

Two things methods need from the model they started from:

1. Sequence log-likelihoods log π_ref(y) of each forget/retain example (NPO and its variants).
   These are computed ONCE before training by `precompute_ref_logp` and stored in each example
   as a float `ref_logp`; `LMCollator` passes it through as `batch[side]["ref_logp"]`. No second
   model is held and no reference forward runs during training.
2. Full next-token distributions on retain batches (the KL regularisers of ga_klr/npo_klr) or
   hidden activations (rmu's retain term). These depend on the batch, so a `Reference` computes
   them on the fly:
   - with LoRA: the same model with its adapters disabled (`model.disable_adapter()`), which is
     exactly the starting model because only adapter weights train;
   - without LoRA: a frozen snapshot of the parameters that can change (those with
     `requires_grad`), swapped in for one forward with `torch.func.functional_call`. Frozen
     parameters are shared, so the snapshot is a full copy only when every parameter trains —
     the one unavoidable case (a full KL needs the full starting model). rmu freezes all but a
     few layers, so its snapshot is a few layers.

Reference forwards run under `torch.no_grad()` in eval mode (no dropout), then restore the mode.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from tqdm.auto import tqdm

from lethe.errors import LetheError
from unlearn.data import LMCollator
from unlearn.methods.losses import token_logprobs

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Reference:
    """The starting model's view of a batch part; give it to losses as `ref`.

    Build it with `make_reference`. `adapter_off=True`: the model is a peft model whose adapters
    are disabled for reference forwards. Otherwise `snapshot` maps parameter names to frozen
    copies of every trainable parameter, substituted during reference forwards.
    """

    def __init__(self, model, *, adapter_off: bool = False,
                 snapshot: dict[str, torch.Tensor] | None = None):
        if adapter_off == (snapshot is not None):
            raise ValueError("Reference needs exactly one of adapter_off=True or a snapshot")
        self.model = model
        self.adapter_off = adapter_off
        self.snapshot = snapshot

    @property
    def held_bytes(self) -> int:
        """Bytes of parameters this reference holds beyond the model itself."""
        return sum(t.numel() * t.element_size() for t in (self.snapshot or {}).values())

    def _sync_snapshot(self) -> None:
        # The Trainer may move/cast the model after the reference was built (e.g. to the GPU).
        params = dict(self.model.named_parameters())
        for name, frozen in self.snapshot.items():
            live = params[name]
            if frozen.device != live.device or frozen.dtype != live.dtype:
                self.snapshot[name] = frozen.to(device=live.device, dtype=live.dtype)

    def forward(self, **inputs):
        """The reference model's output for `model(**inputs)` (no gradient, eval mode).

        Forward hooks registered on the model's modules fire as usual (rmu reads activations).
        """
        with torch.no_grad(), _eval_mode(self.model):
            if self.adapter_off:
                with self.model.disable_adapter():
                    return self.model(**inputs)
            self._sync_snapshot()
            return torch.func.functional_call(self.model, self.snapshot, args=(),
                                              kwargs=inputs, strict=False)

    def logits(self, part: dict) -> torch.Tensor:
        """Reference logits (B, T, V) for a batch part (`input_ids`, `attention_mask`)."""
        return self.forward(input_ids=part["input_ids"],
                            attention_mask=part["attention_mask"]).logits

    def sequence_logprob(self, part: dict) -> torch.Tensor:
        """Reference summed log-likelihood of each sequence (B,) — one extra forward."""
        logp, _ = token_logprobs(self.logits(part), part["labels"])
        return logp.sum(-1)


def make_reference(model, method, lora_enabled: bool, cfg=None) -> Reference | None:
    """The `Reference` a method needs (None when it needs no reference model). `cfg` (the
    method's config) may ask for one too (`MethodConfig.wants_ref_model`).

    Call it after LoRA is applied and after the method's `prepare` hook (so the snapshot covers
    only what will train), and before training starts.
    """
    if not (method.needs_ref_model or getattr(cfg, "wants_ref_model", False)):
        return None
    if lora_enabled:
        if not hasattr(model, "disable_adapter"):
            raise LetheError(f"method {method.name!r}: lora is enabled but the model has no "
                             f"adapters; apply LoRA (lethe.trainer.apply_lora) before "
                             f"make_reference")
        log.info("%s: reference = the model with LoRA adapters disabled (no copy)", method.name)
        return Reference(model, adapter_off=True)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not trainable:
        raise LetheError(f"method {method.name!r}: the model has no trainable parameters, so "
                         f"there is nothing to unlearn (check the method's layer settings)")
    if any(hasattr(p, "ds_id") for p in trainable.values()):
        raise LetheError(f"method {method.name!r}: a full-parameter reference cannot be "
                         f"snapshotted under DeepSpeed ZeRO-3 (parameters are partitioned); "
                         f"enable lora or use ZeRO-2")
    snapshot = {n: p.detach().clone() for n, p in trainable.items()}
    ref = Reference(model, snapshot=snapshot)
    total = sum(p.numel() for p in model.parameters())
    log.info("%s: reference = frozen copy of %d of %d parameters (%.1f MB)", method.name,
             sum(t.numel() for t in snapshot.values()), total, ref.held_bytes / 2**20)
    return ref


def precompute_ref_logp(model, examples: list[dict], collator=None, batch_size: int = 8, *,
                        pad_token_id: int | None = None) -> list[dict]:
    """Each example with `ref_logp` added: its summed log-likelihood under `model`, now.

    examples: tokenized examples (`{"input_ids": [...]}`, as `tokenize_texts` makes them);
    collator: an `LMCollator` (pads, sets labels), or None to use `LMCollator(pad_token_id)`.
    Run it on the starting model before training (for a fresh LoRA model the adapters are a
    no-op, so either way is the starting model). Returns new dicts; the input is not modified.
    """
    if batch_size < 1:
        raise LetheError(f"precompute_ref_logp: batch_size must be ≥ 1, got {batch_size}")
    if collator is None:
        if pad_token_id is None:
            raise LetheError("precompute_ref_logp: give a collator or pad_token_id")
        collator = LMCollator(pad_token_id)
    device = next(model.parameters()).device
    out: list[dict] = []
    starts = range(0, len(examples), batch_size)
    with torch.no_grad(), _eval_mode(model):
        for start in tqdm(starts, desc="reference log-probs", unit="batch",
                          disable=len(starts) < 2):
            chunk = [{k: v for k, v in e.items() if k != "ref_logp"}
                     for e in examples[start:start + batch_size]]
            batch = {k: v.to(device) for k, v in collator(chunk).items()}
            logits = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).logits  # (B, T, V)
            logp, _ = token_logprobs(logits, batch["labels"])  # (B, T-1)
            for ex, value in zip(chunk, logp.sum(-1).tolist()):
                out.append({**ex, "ref_logp": float(value)})
    return out


def ref_logp_key(model_id: str, model, examples: list[dict]) -> str:
    """Cache key of `precompute_ref_logp(model, examples)`: the starting model's content
    fingerprint, its dtype and device type (float results differ across them), and every
    example's token ids."""
    import hashlib

    p = next(model.parameters())
    h = hashlib.sha256(f"ref_logp/1:{model_id}:{p.dtype}:{p.device.type}:{len(examples)}".encode())
    for e in examples:
        h.update(b"\0" + ",".join(map(str, e["input_ids"])).encode())
    return h.hexdigest()[:24]


def cached_ref_logp(model, examples: list[dict], *, model_id: str | None, batch_size: int = 8,
                    pad_token_id: int) -> list[dict]:
    """`precompute_ref_logp`, reused across runs: the values are kept in
    `lethe.loading.cache_dir()/ref_logp/<key>.json` (key: `ref_logp_key`), so the variants of
    a comparison, seeds and reruns starting from the same model on the same data pay the
    reference forward once. `model_id` None (a model without a content fingerprint, e.g. a hub
    id) computes without caching."""
    import json

    from lethe.loading import cache_dir
    from lethe.report import atomic_write_text

    if model_id is None or not examples:
        return precompute_ref_logp(model, examples, batch_size=batch_size,
                                   pad_token_id=pad_token_id)
    path = cache_dir() / "ref_logp" / f"{ref_logp_key(model_id, model, examples)}.json"
    try:
        values = json.loads(path.read_text(encoding="utf-8"))["ref_logp"]
        if len(values) == len(examples):
            log.info("reference log-probs of %d examples reused from %s", len(values), path)
            return [{**{k: v for k, v in e.items() if k != "ref_logp"}, "ref_logp": float(v)}
                    for e, v in zip(examples, values)]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or unreadable: compute it (again)
    out = precompute_ref_logp(model, examples, batch_size=batch_size, pad_token_id=pad_token_id)
    atomic_write_text(path, json.dumps({"model": model_id, "n": len(out),
                                        "ref_logp": [e["ref_logp"] for e in out]}))
    return out
