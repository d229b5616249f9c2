"""The one adapter's speed parts compute what the plain ones do: the in-place KV cache holds
exactly what concatenation would, and length-bucketed scoring batches keep every text."""

import torch

from lethe.kvcache import PreallocatedLayer, preallocated_cache
from lethe.lm import length_batches


def test_preallocated_layer_equals_concatenation_also_when_it_grows_or_is_reindexed():
    torch.manual_seed(0)
    layer, keys = PreallocatedLayer(capacity=3), []
    for m in (2, 1, 4, 1):  # the third update outgrows the buffer
        k, v = torch.randn(2, 1, m, 4), torch.randn(2, 1, m, 4)
        keys.append(k)
        got_k, got_v = layer.update(k, v)
        assert torch.equal(got_k, torch.cat(keys, dim=-2)) and got_v.shape == got_k.shape
    assert layer.get_seq_length() == 8
    layer.batch_select_indices(torch.tensor([1]))  # an inherited method replaces the tensors
    k = torch.randn(1, 1, 1, 4)
    got_k, _ = layer.update(k, k)
    assert torch.equal(got_k, torch.cat([torch.cat(keys, dim=-2)[1:], k], dim=-2))


def test_preallocated_cache_repeats_a_prefix_and_declines_other_layers(random_model):
    from transformers.cache_utils import DynamicCache, DynamicSlidingWindowLayer

    out = random_model(input_ids=torch.tensor([[1, 5, 6, 7]]), use_cache=True)
    prefix = getattr(out, "cache", None) or out.past_key_values
    cache = preallocated_cache(random_model, 3, 10, prefix)
    for layer, src in zip(cache.layers, prefix.layers):
        assert torch.equal(layer.keys, src.keys.expand(3, -1, -1, -1))
    odd = DynamicCache()
    odd.layers = [DynamicSlidingWindowLayer(sliding_window=2)]
    assert preallocated_cache(random_model, 3, 10, odd) is None


def test_length_batches_close_early_and_keep_every_index():
    ids = [[0] * n for n in (10, 3, 9, 8, 2, 10, 5)]
    batches = list(length_batches(ids, batch_size=2, fill=0.9))
    assert batches == [[0, 5], [2], [3], [6], [1], [4]]  # longest first, ties in input order
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))
    assert list(length_batches(ids, batch_size=8, fill=0.0)) == [[0, 5, 2, 3, 6, 1, 4]]
