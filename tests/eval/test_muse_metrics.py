"""VerbMem, KnowMem and PrivLeak on hand-computed inputs, with a scripted stand-in model."""

import numpy as np
import pytest

from eval.muse.knowmem import cut_answer, icl_prefix, knowmem, qa_prompt
from eval.muse.privleak import (MUSE_RETRAIN_AUC, RetrainReference, privleak_from_scores,
                                resolve_retrain_auc)
from eval.muse.verbmem import truncate_to_tokens, verbmem
from eval.rouge import rouge_l_f1
from lethe.errors import LetheError


class ScriptedLM:
    """Answers `generate` from a function of the prompt and records what it was asked."""

    def __init__(self, tokenizer, answer):
        self.tokenizer, self.answer, self.calls = tokenizer, answer, []

    def generate(self, prompts, max_new_tokens, batch_size=8, **kw):
        self.calls.append((list(prompts), max_new_tokens))
        return [self.answer(p) for p in prompts]


# ---------------------------------------------------------------------------------- ROUGE


def test_rouge_l_f1_by_hand():
    # LCS("the cat sat on the mat", "the cat on mat") = 4 tokens: P = 4/4, R = 4/6, F = 0.8
    assert rouge_l_f1("the cat sat on the mat", "the cat on mat") == pytest.approx(0.8)
    assert rouge_l_f1("The CAT, sat!", "the cat sat") == pytest.approx(1.0)  # case, punctuation
    assert rouge_l_f1("running dogs", "run dog") == 0.0  # no stemmer
    assert rouge_l_f1("Lisbon", "") == 0.0


# ---------------------------------------------------------------------------------- VerbMem


def test_ground_truth_is_cut_to_its_first_128_tokens(tokenizer):
    gt = " ".join(f"word{i} harbour" for i in range(150))
    ids = tokenizer(gt, add_special_tokens=False)["input_ids"]
    assert len(ids) > 200
    cut = truncate_to_tokens(gt, tokenizer, 128)
    assert gt.startswith(cut) and len(cut) < len(gt)
    assert tokenizer(cut, add_special_tokens=False)["input_ids"] == ids[:128]
    assert cut == tokenizer.decode(ids[:128])
    short = "a short answer"
    assert truncate_to_tokens(short, tokenizer, 128) == short


def test_verbmem_scores_against_the_truncated_ground_truth(tokenizer):
    gt = " ".join(f"word{i} harbour" for i in range(150))
    cut = truncate_to_tokens(gt, tokenizer, 128)
    exact = ScriptedLM(tokenizer, lambda p: cut)
    s = verbmem(exact, ["prompt"], [gt], max_new_tokens=128, n_resamples=100)
    assert s.value == pytest.approx(100.0)  # reproducing the first 128 tokens is perfect
    assert exact.calls == [(["prompt"], 128)]
    longer = verbmem(ScriptedLM(tokenizer, lambda p: gt), ["prompt"], [gt], n_resamples=100)
    assert longer.value < 80.0  # the part beyond 128 tokens is not in the reference


def test_verbmem_is_mean_f1_times_100(tokenizer):
    lm = ScriptedLM(tokenizer, lambda p: {"p1": "the cat on mat", "p2": "nothing"}[p])
    s = verbmem(lm, ["p1", "p2"], ["the cat sat on the mat", "the dog"], n_resamples=200)
    assert s.per_example == pytest.approx([80.0, 0.0])
    assert s.value == pytest.approx(40.0)
    assert s.meta["outputs"] == ["the cat on mat", "nothing"]


# ---------------------------------------------------------------------------------- KnowMem


def test_icl_prompt_format_exactly():
    prefix = icl_prefix(["Who?", "When?"], ["Ada", "1843"])
    assert prefix == "Question: Who?\nAnswer: Ada\n\nQuestion: When?\nAnswer: 1843\n\n"
    assert qa_prompt(prefix, "Where?") == (
        "Question: Who?\nAnswer: Ada\n\nQuestion: When?\nAnswer: 1843\n\n"
        "Question: Where?\nAnswer: ")


@pytest.mark.parametrize("raw, cut", [
    ("Lisbon\n\nQuestion: Where?", "Lisbon"),
    ("Lisbon\nQuestion: Where?", "Lisbon"),
    ("Lisbon Question: Where?", "Lisbon "),
    ("Lisbon, Portugal\nand more", "Lisbon, Portugal\nand more"),
    ("Porto\nQuestion\n\nx", "Porto"),
    ("\n\nLisbon", ""),
    ("Lisbon", "Lisbon"),
])
def test_answer_cut(raw, cut):
    assert cut_answer(raw) == cut


def test_knowmem_uses_ten_icl_pairs_cuts_and_scores(tokenizer):
    icl_q = [f"Q{i}?" for i in range(12)]
    icl_a = [f"A{i}" for i in range(12)]
    answers = {"Where was Ada born?": "London\n\nQuestion: next", "Who?": "nobody"}
    lm = ScriptedLM(tokenizer, lambda p: answers[p.rsplit("Question: ", 1)[1][:-len(
        "\nAnswer: ")]])
    s = knowmem(lm, ["Where was Ada born?", "Who?"], ["London", "Ada Lovelace"], icl_q, icl_a,
                n_resamples=200)
    prompts, max_new = lm.calls[0]
    assert max_new == 32
    expected_prefix = "".join(f"Question: Q{i}?\nAnswer: A{i}\n\n" for i in range(10))
    assert prompts[0] == expected_prefix + "Question: Where was Ada born?\nAnswer: "
    assert s.meta["outputs"] == ["London", "nobody"]
    assert s.per_example == pytest.approx([100.0, 0.0]) and s.value == pytest.approx(50.0)


# ---------------------------------------------------------------------------------- PrivLeak


def _groups(forget_minK, holdout_minK):
    f = {"min_k": np.asarray(forget_minK, float), "loss": np.asarray(forget_minK, float) / 2}
    h = {"min_k": np.asarray(holdout_minK, float), "loss": np.asarray(holdout_minK, float) / 2}
    return f, h


def test_privleak_sign_memorised_is_minus_100():
    f, h = _groups([0.1, 0.2, 0.3, 0.4], [2.0, 2.5, 3.0, 3.5])  # forget far less surprising
    s = privleak_from_scores(f, h, retrain=resolve_retrain_auc(0.5), n_resamples=500)
    assert s.meta["auc"] == 0.0
    assert s.value == pytest.approx(-100.0)
    assert s.meta["labels"].startswith("members (forget) = 1")


def test_privleak_of_the_retrain_model_is_zero_by_construction():
    f, h = _groups([1.0, 2.2, 2.9, 3.1], [1.5, 2.0, 3.0, 3.3])
    s = privleak_from_scores(f, h, retrain="self", n_resamples=500)
    assert s.value == 0.0 and (s.ci_low, s.ci_high) == (0.0, 0.0)
    ref = RetrainReference.from_score(s, "retrain")
    assert ref.auc == s.meta["auc"] and ref.source == "model:retrain"
    # an over-unlearned model (forget MORE surprising than holdout) leaks the other way
    f2, h2 = _groups([5.0, 6.0, 7.0, 8.0], [1.5, 2.0, 3.0, 3.3])
    over = privleak_from_scores(f2, h2, retrain=ref, n_resamples=500)
    assert over.meta["auc"] == 1.0
    assert over.value == pytest.approx((1.0 - ref.auc) / ref.auc * 100)
    assert over.value > 0
    assert over.meta["interval"].startswith("joint")
    assert over.meta["attacks"]["loss"]["privleak"] == pytest.approx(
        (1.0 - ref.aucs["loss"]) / ref.aucs["loss"] * 100)


def test_retrain_auc_values_and_presets():
    assert resolve_retrain_auc("muse-news").auc == MUSE_RETRAIN_AUC["muse-news"] == 0.4772
    assert resolve_retrain_auc("muse-books").auc == 0.5393
    assert resolve_retrain_auc("0.25").auc == 0.25 and resolve_retrain_auc(1.0).auc == 1.0
    for bad in (0, 0.0, -0.1, 1.5, "nan", "abc", "muse-wiki"):
        with pytest.raises(LetheError):
            resolve_retrain_auc(bad)
    with pytest.raises(LetheError, match="Min-40%"):
        resolve_retrain_auc("muse-news", k=0.2)
