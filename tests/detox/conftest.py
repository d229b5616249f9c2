"""Tiny real models for the detox rewrite/eval tests, built once per session under tmp."""

import json
import os
from pathlib import Path

import pytest

from tests.helpers import THREADS, fixture_seed

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tiny models are far faster on one thread: on a shared 2-core machine, OpenMP threads
    of microsecond-sized kernels mostly wait for each other (measured: 11.8 s -> 1.7 s for the
    15-line rewrite test under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _corpus():
    from detox.rewrite.fewshot import builtin_pool_path

    texts = []
    for line in builtin_pool_path().read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        texts += [obj["source"], obj["target"]]
    return texts


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A byte-level BPE (vocab 400) with ChatML specials and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny_tok")
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(_corpus(), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", bos_token="<|im_start|>")
    tok.chat_template = CHATML
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama(tiny_tokenizer_dir, tmp_path_factory):
    """A ~60k-parameter random Llama saved with the tiny tokenizer (deterministic greedy)."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny_llama")
    for f in tiny_tokenizer_dir.iterdir():
        shutil.copy(f, path / f.name)
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(fixture_seed(0))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                      initializer_range=0.3)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_classifier(tiny_tokenizer_dir, tmp_path_factory):
    """A random 2-label Llama sequence classifier with labels neutral / toxic."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    path = tmp_path_factory.mktemp("tiny_cls")
    for f in tiny_tokenizer_dir.iterdir():
        shutil.copy(f, path / f.name)
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(fixture_seed(1))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                      pad_token_id=tok.pad_token_id, num_labels=2,
                      id2label={0: "neutral", 1: "toxic"}, label2id={"neutral": 0, "toxic": 1},
                      initializer_range=0.5)
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def minilm():
    """The real bundled all-MiniLM-L6-v2, loaded once for the tests that need it."""
    from eval.detox.similarity import SentenceEmbedder

    return SentenceEmbedder("minilm", device="cpu")


@pytest.fixture
def tiny_recipe_args(tiny_llama):
    """--set overrides that make `detox rewrite` run few-shot on the tiny model with no MiniLM
    load."""
    fewshot = Path(__file__).resolve().parents[2] / "recipes" / "detox" / "fewshot.yaml"
    return ["--recipe", str(fewshot), "--set", f"rewriter.model={tiny_llama}",
            "--set", "rewriter.embedder=hashing:512",
            "--set", "generation.max_new_tokens=6", "--set", "generation.batch_size=4",
            "--set", f"scorers.fl.model={tiny_llama}", "--set", "scorers.sim.model=hashing:512"]


@pytest.fixture
def index_cache(tmp_path, monkeypatch):
    """Keep the demonstration-index cache of each test in its own tmp dir."""
    monkeypatch.setenv("LETHE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
