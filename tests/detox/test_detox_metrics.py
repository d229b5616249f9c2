"""eval.detox scorers and joint metrics on hand-computed cases."""

import math

import pytest

from eval.detox import joint
from eval.detox.fluency import PerplexityFluency, fl_from_nll
from eval.detox.registry import SCORERS, create
from eval.detox.scorers import Scorers, ScorersConfig
from eval.detox.similarity import EmbeddingSimilarity
from eval.detox.toxicity import ClassifierSTA, HFClassifierProb, ProfanitySTA
from lethe.errors import LetheError


def test_chrf_hand_computed():
    # char n-grams of "abc" vs "abd": 1-grams P=R=2/3, 2-grams 1/2, 3-grams 0; orders 4-6 have
    # no n-grams and are left out; beta=2 F of the averages (P = R = 7/18) is 7/18.
    assert joint.chrf("abc", ["abd"]) == pytest.approx(7 / 18)
    assert joint.chrf("the cat sat", ["a dog", "the cat sat"]) == pytest.approx(1.0)  # best ref


def test_bleu_hand_computed():
    # "a b c d e" vs "a b c d f": n-gram precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty
    assert joint.corpus_bleu(["a b c d e"], [["a b c d f"]]) == pytest.approx(
        (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # variable reference counts: the second example has one reference, the first two
    assert joint.corpus_bleu(["a b c d e", "x y z w v"], [["q", "a b c d e"], ["x y z w v"]]) \
        == pytest.approx(1.0)


def test_rouge_l_hand_computed():
    # LCS("a b c d", "a c d e") = "a c d": P = R = 3/4 -> F = 0.75; best over references
    assert joint.rouge_l("a b c d", ["a c d e"]) == pytest.approx(0.75)
    assert joint.rouge_l("a b c d", ["z", "a c d e", "a b"]) == pytest.approx(0.75)


def test_fluency_mapping_hand_computed():
    ok = math.log(300)
    assert fl_from_nll(ok - 1, 300, 2) == 1.0
    assert fl_from_nll(ok, 300, 2) == pytest.approx(1.0)
    assert fl_from_nll(ok + 2, 300, 2) == pytest.approx(math.exp(-1))
    assert fl_from_nll(math.inf, 300, 2) == 0.0


def test_perplexity_nll_matches_one_text_at_a_time(tiny_llama):
    """Batched, padded NLL equals a direct per-text cross-entropy after the start token."""
    import torch

    fl = PerplexityFluency(tiny_llama, device="cpu", batch_size=3)
    texts = ["please leave", "you idiot, read the manual now", "ok", ""]
    got = fl.nll(texts)
    tok, model = fl._lm.tokenizer, fl._lm.model
    start = tok.convert_tokens_to_ids("<|endoftext|>")
    for text, value in zip(texts[:3], got):
        ids = torch.tensor([[start] + tok(text, add_special_tokens=False)["input_ids"]])
        logits = model(ids).logits[0, :-1]
        want = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
        assert value == pytest.approx(want, rel=1e-4)
    assert got[3] == math.inf
    scores = fl.score(texts)
    assert scores[:3] == pytest.approx([fl_from_nll(v, 300, 2) for v in got[:3]])
    assert scores[3] == 0.0


def test_profanity_sta():
    from profanity_check import predict_prob

    sta = ProfanitySTA()
    texts = ["you are a fucking idiot", "thank you for your help"]
    p = predict_prob(texts)
    assert sta.score(texts) == pytest.approx([1 - p[0], 1 - p[1]])
    assert sta.non_toxic(texts) == [0.0, 1.0]  # the first is offensive, the second is not
    assert sta.score([]) == []


def test_classifier_sta_and_label_lookup(tiny_classifier):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["you idiot", "please leave me alone", "ok"]
    sta = ClassifierSTA(tiny_classifier, toxic_label="TOXIC", device="cpu", batch_size=2)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    want = []
    for t in texts:  # one at a time, no padding
        with torch.no_grad():
            want.append(1 - model(**tok(t, return_tensors="pt")).logits.softmax(-1)[0, 1].item())
    assert sta.score(texts) == pytest.approx(want, abs=1e-5)
    assert HFClassifierProb.label_index({0: "neutral", 1: "toxic"}, "1") == 1
    with pytest.raises(LetheError, match="no label 'offensive'.*0=neutral, 1=toxic"):
        HFClassifierProb.label_index({0: "neutral", 1: "toxic"}, "offensive", "m")


def test_hashing_similarity_hand_computed():
    sim = EmbeddingSimilarity("hashing:4096")
    # bags {alpha, beta} vs {alpha, gamma}: cosine 1/2; disjoint bags: 0; same bag: 1
    assert sim.score(["alpha beta", "alpha", "Beta alpha"],
                     ["alpha gamma", "delta", "alpha beta"]) == pytest.approx([0.5, 0.0, 1.0])
    with pytest.raises(ValueError, match="one source per text"):
        sim.score(["a"], None)


def test_real_minilm_similarity_and_bertscore(minilm):
    from lethe.loading import minilm_path

    sim = create(SCORERS["sim"]["embedding"](device="cpu"))
    assert sim.embedder.model_spec == "minilm"
    sim.embedder = minilm  # the same model, already loaded by the session fixture
    s = sim.score(["the film was bad", "the film was bad"],
                  ["the movie was terrible", "my cat is asleep"])
    assert s[0] > 0.6 > 0.2 > s[1]
    bs = create(SCORERS["sim"]["bertscore"](model=minilm_path(), device="cpu"))
    assert bs.score(["the film was bad"], ["the film was bad"]) == pytest.approx([1.0], abs=1e-5)
    p, r, f = bs.prf(["the film was bad", "a cat"], ["a cat sat on the mat", "the film"])
    p2, r2, _ = bs.prf(["a cat sat on the mat", "the film"], ["the film was bad", "a cat"])
    assert p == pytest.approx(r2, abs=1e-6) and r == pytest.approx(p2, abs=1e-6)
    assert f[0] == pytest.approx(2 * p[0] * r[0] / (p[0] + r[0]))


def test_joint_scores_compose_the_components(tiny_llama):
    cfg = ScorersConfig(sim=SCORERS["sim"]["embedding"](model="hashing:4096"),
                        fl=SCORERS["fl"]["perplexity"](model=tiny_llama, device="cpu"),
                        sta_clf=SCORERS["sta"]["profanity"](threshold=0.99))
    scorers = Scorers.from_config(cfg)
    texts = ["alpha beta", "you fucking idiot", "alpha beta gamma"]
    sources = ["alpha gamma", "you fucking idiot", "alpha beta gamma"]
    refs = [["alpha beta"], ["you are wrong"], ["alpha beta gamma", "x"]]
    comps = joint.Components(texts, sources, refs, scorers)
    names = joint.check_metrics(joint.default_metrics(True), True)
    summary, per = joint.evaluate(comps, names)
    assert per["sim"] == pytest.approx([0.5, 1.0, 1.0])
    assert per["sta_bin"] == [1.0, 0.0, 1.0]
    assert per["chrf"][0] == per["chrf"][2] == pytest.approx(1.0)
    fl = per["fl"]
    sta = per["sta"]
    assert per["j_paradetox"] == pytest.approx([0.5 * fl[0], 0.0, fl[2]])
    assert per["j_bin_chrf"] == pytest.approx([0.5, 0.0, 1.0])
    assert per["j_clef2024"] == pytest.approx([sta[0] * 0.5, sta[1] * per["chrf"][1], sta[2]])
    assert summary["j_bin_chrf"] == pytest.approx(0.5)
    # the second STA (here the word list again, at another threshold) gives its own columns
    assert per["sta_clf"] == pytest.approx(sta)
    assert per["j_clf"] == pytest.approx([0.5, 0.0, 1.0]) and per["refusal"] == [0.0] * 3
    assert summary["bleu"] == pytest.approx(joint.corpus_bleu(texts, refs))
    assert set(summary) == set(names)


def test_metric_names_are_checked():
    with pytest.raises(LetheError, match="did you mean 'chrf'"):
        joint.check_metrics(["chrff"], True)
    with pytest.raises(LetheError, match="needs references"):
        joint.check_metrics(["j_clef2024"], False)
