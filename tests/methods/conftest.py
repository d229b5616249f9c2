"""Tiny in-memory models and data shared by the method tests (seconds on 2 CPU cores)."""

from __future__ import annotations

import os
import random

import pytest
import torch

from tests.helpers import THREADS, fixture_seed

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Models here have ~30k parameters: one thread is ~100x faster than two on a shared 2-core
# machine (OpenMP workers spin against other users' processes; measured 5 ms vs 2.4 s per step).
torch.set_num_threads(THREADS)

VOCAB = 128


def tiny_llama(seed: int = 0, vocab: int = VOCAB):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(fixture_seed(seed))
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    # A larger init than Llama's 0.02 so the untrained model has non-trivial, input-dependent
    # distributions (otherwise every logit is ~0 and losses barely depend on the weights).
    cfg.initializer_range = 0.2
    return LlamaForCausalLM(cfg).eval()


def random_examples(n: int, seed: int, lo: int = 6, hi: int = 12, vocab: int = VOCAB):
    rng = random.Random(fixture_seed(seed))
    return [{"input_ids": [1] + [rng.randrange(3, vocab) for _ in range(rng.randrange(lo, hi))]}
            for _ in range(n)]


def memorise(model, examples, steps: int = 60, lr: float = 1e-2):
    """A few Adam steps of plain LM training so the model knows `examples` (NLL well below
    log V): unlearning is then measurable as a rise in forget NLL."""
    from unlearn.data import LMCollator
    from unlearn.methods.losses import nll

    batch = LMCollator(0)(examples)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nll(model, batch).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_state():
    """Weights of a tiny Llama trained on the forget and retain examples (built once)."""
    model = memorise(tiny_llama(), random_examples(8, seed=1) + random_examples(8, seed=2))
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def model(trained_state):
    model = tiny_llama()
    model.load_state_dict(trained_state)
    return model.eval()


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
