"""Tiny in-memory models and data shared by the method tests (seconds on 2 CPU cores)."""

from __future__ import annotations

import os
import random

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCAB = 128


def tiny_llama(seed: int = 0, vocab: int = VOCAB):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    # A larger init than Llama's 0.02 so the untrained model has non-trivial, input-dependent
    # distributions (otherwise every logit is ~0 and losses barely depend on the weights).
    cfg.initializer_range = 0.2
    return LlamaForCausalLM(cfg).eval()


def random_examples(n: int, seed: int, lo: int = 6, hi: int = 12, vocab: int = VOCAB):
    rng = random.Random(seed)
    return [{"input_ids": [1] + [rng.randrange(3, vocab) for _ in range(rng.randrange(lo, hi))]}
            for _ in range(n)]


@pytest.fixture
def model():
    return tiny_llama()


@pytest.fixture
def forget():
    return random_examples(8, seed=1)


@pytest.fixture
def retain():
    return random_examples(8, seed=2)


@pytest.fixture
def batch(forget, retain):
    from unlearn.data import PairedCollator, PairedDataset

    ds = PairedDataset(forget[:4], retain[:4])
    return PairedCollator(0)([ds[i] for i in range(4)])


@pytest.fixture
def tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t3"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", bos_token="t1",
                                   eos_token="t2", unk_token="t3")
