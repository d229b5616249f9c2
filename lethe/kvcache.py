"""A KV cache that is written in place: `lethe.lm.LM.generate`'s cache.

transformers' `DynamicLayer` grows by `torch.cat` at every decoding step, which copies the
whole cache of the batch once per new token: O(B·L) bytes per step for a (B, H, L, D) cache.
KnowMem's rows each carry the ~400-token in-context prefix, so on the demo target that copy
was ~28% of KnowMem's time. `PreallocatedLayer` keeps the same (B, H, L, D) keys and values in
a buffer sized for the prompt plus the new tokens and writes each step's states into it;
`keys`/`values` are views of the filled part, so attention reads exactly the tensors it read
before (greedy outputs are unchanged; tests/eval/test_eval_lm.py pins them).

Imported only when generating (it imports transformers).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values live in a buffer of `capacity` positions."""

    def __init__(self, capacity: int, **kwargs):
        super().__init__(**kwargs)
        self.capacity = capacity
        self._k = self._v = None  # (B, H, capacity, D) buffers

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Write (B, H, m, D) new states after the filled part; return the filled views."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.get_seq_length()
        if not self._holds(n):  # first call, or an inherited method replaced keys/values
            self._reserve(n + key_states.shape[-2], key_states, value_states)
        elif n + key_states.shape[-2] > self._k.shape[-2]:
            self._reserve(max(n + key_states.shape[-2], 2 * self._k.shape[-2]), key_states,
                          value_states)
        m = key_states.shape[-2]
        self._k[:, :, n:n + m] = key_states
        self._v[:, :, n:n + m] = value_states
        self.keys, self.values = self._k[:, :, :n + m], self._v[:, :, :n + m]
        return self.keys, self.values

    def _holds(self, n: int) -> bool:
        """Whether `keys` is still the first n positions of the buffer."""
        return (self._k is not None and self.keys is not None and self.keys.dim() == 4
                and self.keys.data_ptr() == self._k.data_ptr() and self.keys.shape[-2] == n)

    def _reserve(self, needed: int, key_states: torch.Tensor, value_states: torch.Tensor):
        """New buffers of max(needed, capacity) positions holding the cached states so far."""
        size = max(needed, self.capacity)
        old = (self.keys, self.values) if self.get_seq_length() else (None, None)
        bufs = []
        for new, cached in zip((key_states, value_states), old):
            shape = (new.shape[0], new.shape[1], size, new.shape[3])
            buf = torch.empty(shape, dtype=new.dtype, device=new.device)
            if cached is not None:
                buf[:, :, :cached.shape[-2]] = cached
            bufs.append(buf)
        self._k, self._v = bufs
        n = old[0].shape[-2] if old[0] is not None else 0
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]


def preallocated_cache(model, batch: int, capacity: int, prefix=None):
    """A cache for `batch` rows of up to `capacity` tokens, holding `prefix` (a one-row
    `DynamicCache`, e.g. a shared prompt prefix) repeated over the rows. None when the model's
    cache is not made of plain `DynamicLayer`s (sliding windows, linear attention, ...): the
    caller then lets `generate` build its own."""
    if prefix is not None:
        if not prefix.layers or any(type(layer) is not DynamicLayer for layer in prefix.layers):
            return None
        n_layers = len(prefix.layers)
    else:
        try:
            default = DynamicCache(config=model.config)
        except Exception:  # noqa: BLE001  (a config transformers cannot read: no preallocation)
            return None
        if not default.layers or any(type(layer) is not DynamicLayer for layer in default.layers):
            return None
        n_layers = len(default.layers)
    cache = DynamicCache()
    cache.layer_class_to_replicate = None
    cache.layers = [PreallocatedLayer(capacity) for _ in range(n_layers)]
    if prefix is not None:
        for layer, src in zip(cache.layers, prefix.layers):
            layer.update(src.keys.expand(batch, -1, -1, -1), src.values.expand(batch, -1, -1, -1))
    return cache


def cache_kwarg(model) -> str:
    """The name `generate` takes a cache under: `cache` from transformers 5.2x on (where
    `past_key_values` is deprecated), `past_key_values` before."""
    import inspect

    base = getattr(model, "baseline", model)  # a logit mixture generates through its baseline
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    return "cache" if "cache" in inspect.signature(base.forward).parameters else \
        "past_key_values"

