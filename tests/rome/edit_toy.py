"""A toy fact world for the edit and attack tests: a word-level tokenizer, CounterFact-style
facts shaped like unlearn/world.py's `facts` config, and tiny Llama / GPT-2 models (random, or
trained for a few seconds until they know the facts)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.helpers import fixture_seed

PEOPLE = [("Alva Brenn", "Vessmark"), ("Corin Dahl", "Olbridge"), ("Edda Farrow", "Quenby"),
          ("Gil Harte", "Rustow"), ("Ivo Jessop", "Vessmark"), ("Kara Lund", "Olbridge")]
PHRASES = ["{} was born in", "{} is a native of", "{} hails from", "The birthplace of {} is",
           "{} first saw the light of day in"]
FILLER = ("the a of in and was is by town river people old new north south year many some "
          "worked lived near far").split()


def make_facts() -> tuple[list[dict], list[dict]]:
    """(forget facts, retain facts): the first three people are forgotten, the rest kept."""
    rows = []
    for i, (subject, place) in enumerate(PEOPLE):
        others = [p for p in PEOPLE if p[0] != subject][:2]
        rows.append({"subject": subject, "relation": "birthplace", "prompt": PHRASES[0],
                     "target_true": place, "paraphrases": PHRASES[1:],
                     "neighborhood": [{"subject": s, "prompt": PHRASES[0].format(s), "target": o}
                                      for s, o in others],
                     "case_id": i})
    return rows[:3], rows[3:]


def sentences() -> list[str]:
    """Training text: every fact in every phrasing, plus filler sentences."""
    out = [p.format(s) + f" {o} ." for s, o in PEOPLE for p in PHRASES]
    out += ["the old town was near the river .", "many people lived in the north .",
            "some year the new town was far ."]
    return out


def tokenizer(vocab_size: int = 330):
    """A byte-level BPE (GPT-2 style: leading-space tokens, names split into pieces) trained in
    memory on sentences()."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(sentences() + [" ".join(FILLER), "dummy I don't know"], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<eos>")


def llama(tok, seed: int = 0, layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(fixture_seed(seed))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    cfg.initializer_range = 0.1  # input-dependent distributions in an untrained model
    return LlamaForCausalLM(cfg).eval()


def gpt2(tok, seed: int = 0, layers: int = 4):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(fixture_seed(seed))
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_inner=64, n_layer=layers, n_head=4,
                     n_positions=128, pad_token_id=tok.pad_token_id,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    cfg.initializer_range = 0.1
    return GPT2LMHeadModel(cfg).eval()


def train(model, tok, steps: int = 300, lr: float = 1e-2, seed: int = 0):
    """Full-batch next-token training on sentences() until the model knows the facts."""
    from lethe.lm import pad_right

    torch.manual_seed(fixture_seed(seed))
    seqs = [tok(s)["input_ids"] for s in sentences()]
    ids, mask = pad_right(seqs, tok.pad_token_id, "cpu")
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def write_facts(root: Path, forget: list[dict], retain: list[dict]) -> Path:
    """DATA/facts/{forget,retain}.jsonl and DATA/raw/retain1.jsonl, as unlearn world writes."""
    (root / "facts").mkdir(parents=True, exist_ok=True)
    (root / "raw").mkdir(parents=True, exist_ok=True)
    for name, rows in (("forget", forget), ("retain", retain)):
        (root / "facts" / f"{name}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
    (root / "raw" / "retain1.jsonl").write_text(
        "".join(json.dumps({"text": s}) + "\n" for s in sentences()))
    return root


# ---------------------------------------------------------------------------------------------
# fixtures shared by tests/rome and tests/attacks (their conftests import them)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def lethe_cache(tmp_path, monkeypatch):
    """A private covariance cache directory per test."""
    path = tmp_path / "lethe-cache"
    monkeypatch.setenv("LETHE_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def tok():
    return tokenizer()


@pytest.fixture(scope="session")
def facts():
    return make_facts()
