"""Shared, session-scoped fixtures for the eval tests: a tiny world, a byte-level BPE tokenizer
trained on it in memory, and tiny Llama models (random, memorised forget set, retrain)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib  # noqa: E402

import pytest  # noqa: E402

from eval_world import build_world, write_world  # noqa: E402
from tests.helpers import THREADS, fixture_seed  # noqa: E402


@contextlib.contextmanager
def one_thread():
    """Tiny models run fastest on one thread, and far faster than with two threads fighting
    other processes for a shared 2-core machine (measured: 2.4 s vs 48 s for 80 steps)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Module scope: also covers module-scoped fixtures, and restores the setting after each
    module so tests elsewhere keep torch's default."""
    with one_thread():
        yield


def _texts(world) -> list[str]:
    out = [r["text"] for split in world["raw"].values() for r in split]
    out += [f"Question: {r['question']}\nAnswer: {r['answer']}\n\n"
            for split in world["knowmem"].values() for r in split]
    return out


@pytest.fixture(scope="session")
def world():
    return build_world()


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory, world):
    return write_world(tmp_path_factory.mktemp("world"), world)


@pytest.fixture(scope="session")
def tokenizer(world):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_texts(world), trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # Llama-style: BOS prepended, so the first real token is scored too.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def make_model(tokenizer, seed: int = 0, hidden: int = 32):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(fixture_seed(seed))
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=2 * hidden,
                      max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def train_on(model, tokenizer, texts, steps: int = 80, lr: float = 1e-2):
    """Full-batch AdamW on `texts` until memorised (~1 s for these sizes)."""
    import torch

    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    with one_thread():
        for _ in range(steps):
            loss = model(**enc, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return model.eval()


def qa_blocks(rows) -> list[str]:
    """QA pairs in KnowMem's prompt format, three per text, so a model learns to answer and
    then emit the blank line KnowMem cuts at."""
    pairs = [f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in rows]
    return ["".join(pairs[i:i + 3]) for i in range(0, len(pairs), 3)]


@pytest.fixture(scope="session")
def random_model(tokenizer):
    return make_model(tokenizer, seed=0)


@pytest.fixture(scope="session")
def target_model(tokenizer, world):
    """Trained on the forget documents, retain1 and the QA pairs: it has memorised the forget
    set and answers KnowMem questions."""
    texts = [r["text"] for r in world["raw"]["forget"]] + \
        [r["text"] for r in world["raw"]["retain1"]] + \
        qa_blocks(world["knowmem"]["forget_qa"]) + qa_blocks(world["knowmem"]["retain_qa"])
    return train_on(make_model(tokenizer, seed=1), tokenizer, texts)


@pytest.fixture(scope="session")
def retrain_model(tokenizer, world):
    """Trained on retain documents (and retain QA) only: forget and holdout are equally new
    to it."""
    texts = [r["text"] for r in world["raw"]["retain1"]] + \
        [r["text"] for r in world["raw"]["retain2"]] + qa_blocks(world["knowmem"]["retain_qa"])
    return train_on(make_model(tokenizer, seed=2), tokenizer, texts)


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory, tokenizer, target_model, retrain_model):
    """Checkpoint directories for CLI tests: target, retrain, and one without a tokenizer."""
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for name, model in (("target", target_model), ("retrain", retrain_model)):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        paths[name] = root / name
    retrain_model.save_pretrained(root / "no_tokenizer")
    paths["no_tokenizer"] = root / "no_tokenizer"
    return paths
