"""detox.rewrite.fewshot and .prompts: pool layouts, retrieval by cosine, selection and ordering,
cache, prompts."""

import csv
import json
import math

import numpy as np
import pytest

from detox.rewrite.fewshot import (Demo, DemoIndex, DemoSelector, builtin_pool_path, load_pool,
                                   pool_hash)
from detox.rewrite.prompts import PromptBuilder
from detox.rewrite.recipe import PromptConfig
from eval.detox.similarity import HashingEmbedder
from lethe.errors import LetheError


def test_pool_layouts(tmp_path):
    tsv = tmp_path / "p.tsv"
    with tsv.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["toxic", "neutral1", "neutral2", "neutral3"])
        w.writerow(["you are dumb", "you are wrong", "", ""])
        w.writerow(["null", "", "a cell\nover two lines", ""])  # 'null' stays a string
        w.writerow(["no target", "", "", ""])  # skipped: no neutral
    assert load_pool(str(tsv)) == [Demo("you are dumb", "you are wrong"),
                                   Demo("null", "a cell\nover two lines")]
    capp = tmp_path / "c.csv"
    capp.write_text('Context,Utterance,Paraphrase\n"Hi. [SEP] How are you?",Go away.,'
                    'Please leave.\n,Say it again.,Could you repeat that?\n')
    assert load_pool(str(capp)) == [Demo("Go away.", "Please leave.", ("Hi.", "How are you?")),
                                    Demo("Say it again.", "Could you repeat that?")]
    js = tmp_path / "s.jsonl"
    js.write_text(json.dumps({"source": "a", "target": "b", "context": ["c"]}) + "\n")
    assert load_pool(str(js)) == [Demo("a", "b", ("c",))]
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    with pytest.raises(LetheError, match="unknown demonstration layout"):
        load_pool(str(bad))
    builtin = load_pool("builtin")
    assert 40 <= len(builtin) <= 60 and any(d.context for d in builtin)


# A pool where, for the query "alpha beta gamma delta", hashed bag-of-words cosines are
# hand-computable: |q| = 2, shared words / (2 * sqrt(len)).
POOL = [Demo("zeta", "t0"),                    # 0 shared          -> 0
        Demo("alpha beta gamma", "t1"),        # 3 shared of 3     -> 3 / (2 sqrt 3) = 0.866
        Demo("alpha epsilon", "t2"),           # 1 shared of 2     -> 1 / (2 sqrt 2) = 0.354
        Demo("alpha beta eta", "t3"),          # 2 shared of 3     -> 2 / (2 sqrt 3) = 0.577
        Demo("alpha beta gamma delta", "t4")]  # the query itself  -> 1
QUERY = "alpha beta gamma delta"
EMB = HashingEmbedder(4096)


def test_hashing_cosines_are_the_hand_computed_ones():
    words = "alpha beta gamma delta epsilon zeta eta".split()
    assert len({EMB.bucket(w) for w in words}) == len(words)  # no collisions
    sims = DemoIndex(POOL, EMB).similarities([QUERY])[0]
    expected = [0, 3 / (2 * math.sqrt(3)), 1 / (2 * math.sqrt(2)), 2 / (2 * math.sqrt(3)), 1]
    assert sims == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("selection, order, expected", [
    ("most_similar", "ascending", ["t3", "t1"]),    # top 2 (query itself excluded), best last
    ("most_similar", "descending", ["t1", "t3"]),
    ("most_similar", "as_selected", ["t1", "t3"]),
    ("least_similar", "ascending", ["t0", "t2"]),
    ("least_similar", "descending", ["t2", "t0"]),
])
def test_selection_and_order(selection, order, expected):
    sel = DemoSelector(POOL, k=2, selection=selection, order=order, embedder=EMB)
    assert [d.target for d in sel.select([QUERY])[0]] == expected


def test_identical_demo_is_kept_when_not_excluded():
    sel = DemoSelector(POOL, k=1, selection="most_similar", embedder=EMB, exclude_identical=False)
    assert sel.select([QUERY])[0][0].target == "t4"


def test_random_selection_is_per_input_and_independent_of_batching():
    sel = DemoSelector(POOL, k=3, selection="random", order="as_selected", seed=7)
    alone = sel.select([QUERY])[0]
    batched = sel.select(["zeta", QUERY, "other"])[1]
    assert alone == batched and len(alone) == 3 and Demo(QUERY, "t4") not in alone
    other_seed = DemoSelector(POOL, k=3, selection="random", order="as_selected", seed=8)
    draws = {tuple(d.target for d in DemoSelector(POOL, 3, "random", "as_selected", seed=s)
                   .select([QUERY])[0]) for s in range(10)}
    assert len(draws) > 1  # the seed matters
    assert other_seed.needs_similarity is False  # random + as_selected embeds nothing
    # random ordered by similarity: same draw as above, sorted ascending by cosine
    asc = DemoSelector(POOL, k=3, selection="random", order="ascending", seed=7, embedder=EMB)
    sims = dict(zip([d.target for d in POOL], DemoIndex(POOL, EMB).similarities([QUERY])[0]))
    got = [d.target for d in asc.select([QUERY])[0]]
    assert sorted(got) == sorted(d.target for d in alone)
    assert [sims[t] for t in got] == sorted(sims[t] for t in got)


class CountingEmbedder(HashingEmbedder):
    def __init__(self):
        super().__init__(4096)
        self.encoded = 0

    def encode(self, texts):
        self.encoded += len(texts)
        return super().encode(texts)


def test_index_is_cached_on_disk_by_pool_and_embedder(tmp_path):
    first = CountingEmbedder()
    DemoIndex(POOL, first, tmp_path).embeddings
    assert first.encoded == len(POOL) and len(list(tmp_path.glob("*.npy"))) == 1
    again = CountingEmbedder()
    emb = DemoIndex(POOL, again, tmp_path).embeddings
    assert again.encoded == 0 and emb.shape == (len(POOL), 4096)
    changed = POOL[:-1] + [Demo("alpha", "other target")]
    assert pool_hash(changed) != pool_hash(POOL)
    third = CountingEmbedder()
    DemoIndex(changed, third, tmp_path).embeddings
    assert third.encoded == len(POOL) and len(list(tmp_path.glob("*.npy"))) == 2
    assert DemoIndex(POOL, HashingEmbedder(512), tmp_path).key != DemoIndex(POOL, first).key


def test_plain_prompt_with_and_without_instruction_and_context():
    demos = [Demo("you idiot", "please"), Demo("shut up", "be quiet", ("hi",))]
    cfg = PromptConfig(instruction_text="Be nice.")
    b = PromptBuilder(cfg, fmt="plain")
    assert b.build("go away", ("a", "b"), demos) == (
        "Be nice.\n\n"
        "Rude: you idiot\nPolite: please\n\n"
        "Rude: Conversation so far: hi\nMessage to rewrite: shut up\nPolite: be quiet\n\n"
        "Rude: Conversation so far: a | b\nMessage to rewrite: go away\nPolite:")
    bare = PromptBuilder(PromptConfig(instruction=False, use_context=False), fmt="plain")
    assert bare.build("go away", ("a",), demos[:1]) == (
        "Rude: you idiot\nPolite: please\n\nRude: go away\nPolite:")
    assert b.clean("  Polite: fine then\nRude: more") == "fine then"
    raw = PromptBuilder(PromptConfig(template="detox: {text} [{context}]"), fmt="raw")
    assert raw.build("x", ("c",)) == "detox: x [c]"
    with pytest.raises(LetheError, match="cannot show demonstrations"):
        raw.build("x", (), demos)


def test_chat_prompt_uses_the_chat_template(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    b = PromptBuilder(PromptConfig(instruction_text="Be nice."), tok, fmt="chat")
    assert b.build("go away", (), [Demo("you idiot", "please")]) == (
        "<|im_start|>system\nBe nice.<|im_end|>\n"
        "<|im_start|>user\nyou idiot<|im_end|>\n<|im_start|>assistant\nplease<|im_end|>\n"
        "<|im_start|>user\ngo away<|im_end|>\n<|im_start|>assistant\n")
    no_instr = PromptBuilder(PromptConfig(instruction=False), tok, fmt="chat")
    assert "system" not in no_instr.build("go away")


def test_real_minilm_retrieves_by_meaning(tmp_path, minilm):
    """all-MiniLM-L6-v2 (bundled): the nearest demonstration shares meaning, not words."""
    pool = [Demo("that film was trash", "I did not like that film"),
            Demo("my cat sleeps all day", "my cat sleeps a lot"),
            Demo("the soup is cold", "the soup could be warmer")]
    sel = DemoSelector(pool, k=1, selection="most_similar", embedder=minilm, cache_dir=tmp_path)
    picks = sel.select(["this movie is garbage", "the kitten naps constantly"])
    assert [p[0].source for p in picks] == ["that film was trash", "my cat sleeps all day"]
    emb = sel.index.embeddings
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_builtin_pool_file_is_self_written_jsonl():
    lines = builtin_pool_path().read_text(encoding="utf-8").splitlines()
    objs = [json.loads(x) for x in lines]
    assert all(set(o) <= {"source", "target", "context"} for o in objs)
    assert len({o["source"] for o in objs}) == len(objs)
