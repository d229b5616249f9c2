"""TOFU's metrics (eval/tofu): the aggregates by hand, the per-answer statistics against a
manual forward pass, and the suite separating the target from the retain model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from eval.tofu import scores as S
from eval.tofu.qa import qa_ids
from tests.eval.eval_world import CITIES, PETS

CARRIER = "{}"  # the test models learned bare answers ("Answer: Lisbon")


def test_aggregates_by_hand():
    # R = exp(para − mean(pert)): para loss 1, pert losses 2 and 4 → e^(1−3) = e^−2
    assert S.truth_ratio(1.0, [2.0, 4.0]) == pytest.approx(math.exp(-2))
    np.testing.assert_allclose(S.closer_to_one([0.5, 2.0, 1.0]), [0.5, 0.5, 1.0])
    np.testing.assert_allclose(S.true_better([0.25, 1.5]), [0.75, 0.0])
    # P(a)/(P(a) + ΣP(w)) with P = e^−loss: 1/(1 + 2·e^−1·e) when wrong losses are loss + 1
    assert S.prob_with_options(0.5, [1.5, 1.5]) == pytest.approx(1 / (1 + 2 * math.exp(-1)))
    hits = np.array([False, True, False, True, True])
    assert S.exact_memorization(hits) == pytest.approx(0.6)
    assert S.extraction_strength(hits) == pytest.approx(2 / 5)  # the last two from prefix 3
    assert S.extraction_strength(np.array([True] * 4)) == 1.0
    assert S.extraction_strength(np.array([True, True, False])) == 0.0  # last token missed
    assert S.harmonic_mean([0.5, 0.25]) == pytest.approx(2 / (2 + 4))
    assert S.harmonic_mean([0.5, 0.0]) == 0.0
    # KS: identical samples p = 1; fully separated samples of 4 vs 4: exact p = 2/C(8,4)
    assert S.forget_quality([1, 2, 3], [1, 2, 3])[0] == pytest.approx(1.0)
    p, d = S.forget_quality([1, 2, 3, 4], [5, 6, 7, 8])
    assert d == 1.0 and p == pytest.approx(2 / 70)
    assert S.AnswerStats(0.5, hits).prob == pytest.approx(math.exp(-0.5))


def test_rouge_recall_is_stemmed():
    from eval.rouge import rouge_l_recall, rouge_l_recall_stemmed

    # stems: the cat were run / cat run → LCS 2 of 4 reference tokens; unstemmed: no overlap
    assert rouge_l_recall_stemmed("The cats were running", "cat run") == pytest.approx(0.5)
    assert rouge_l_recall("The cats were running", "cat run") == 0.0
    assert rouge_l_recall_stemmed("born in 1807", "He was born in 1807.") == 1.0


def test_answer_stats_match_a_manual_forward(target_model, tokenizer, world):
    from eval.muse.registry import MetricContext, SuiteSettings
    from lethe.lm import LM

    row = world["knowmem"]["forget_qa"][0]
    table = {"question": [row["question"]], "answer": [row["answer"]],
             "perturbed_answer": [["Porto", "Ghent"]]}
    ctx = MetricContext(LM(target_model, tokenizer, progress=False), {"t": table},
                        SuiteSettings(n_resamples=10))
    got = S.answer_stats(ctx, "t", "answer")[0]
    pair = qa_ids(tokenizer, row["question"], row["answer"])
    ids = torch.tensor([pair.prompt + pair.answer])
    with torch.no_grad():
        logp = torch.log_softmax(target_model(input_ids=ids).logits[0, :-1], -1)
    n = len(pair.answer)
    positions = range(ids.shape[1] - 1 - n, ids.shape[1] - 1)
    lps = [logp[t, ids[0, t + 1]].item() for t in positions]
    assert got.avg_loss == pytest.approx(-sum(lps) / n, rel=1e-4)
    assert got.hits.tolist() == [logp[t].argmax().item() == ids[0, t + 1].item()
                                 for t in positions]
    assert tokenizer.decode(pair.answer).strip() == row["answer"]
    wrong = S.answer_stats(ctx, "t", "perturbed_answer")[0]  # a list column: a list per row
    assert len(wrong) == 2 and all(isinstance(w, S.AnswerStats) for w in wrong)
    assert S.answer_stats(ctx, "t", "answer")[0] is got  # cached per model


def _perturbed(rows, pool, carrier, n=3):
    out = []
    for i, r in enumerate(rows):
        wrong = [v for v in pool if v != r["answer"]]
        wrong = [wrong[(i + j) % len(wrong)] for j in range(n)]
        out.append({"question": r["question"], "answer": r["answer"],
                    "paraphrased_answer": carrier.format(r["answer"]),
                    "perturbed_answer": [carrier.format(w) for w in wrong]})
    return out


def write_tofu(root, world):
    """A TOFU-layout dataset from the eval world's QA (cities and dog names)."""
    def pool(rows):
        return CITIES if any(r["answer"] in CITIES for r in rows[:1]) else PETS

    def table(rows):
        return [x for r in rows for x in _perturbed([r], pool([r]), CARRIER)]

    forget, retain = world["knowmem"]["forget_qa"], world["knowmem"]["retain_qa"]
    tables = {"forget10_perturbed": table(forget), "retain_perturbed": table(retain),
              "real_authors_perturbed": [{k: v for k, v in r.items() if k != "paraphrased_answer"}
                                         for r in table(retain[:3])],
              "world_facts_perturbed": [{k: v for k, v in r.items()
                                         if k != "paraphrased_answer"} for r in table(retain[3:])]}
    for config, rows in tables.items():
        (root / config).mkdir(parents=True, exist_ok=True)
        (root / config / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_suite_separates_target_from_retain_model(tmp_path, target_model, retrain_model,
                                                  tokenizer, world):
    from eval.muse import SuiteSettings, evaluate_models
    from eval.muse.report import render_markdown

    data = write_tofu(tmp_path / "tofu", world)
    results = evaluate_models([("target", target_model, tokenizer, {})], str(data),
                              retrain=("retrain", retrain_model, tokenizer, {}),
                              benchmark="tofu",
                              settings=SuiteSettings(n_resamples=200, tofu_max_new_tokens=6))
    rows = {r["label"]: r["scores"] for r in results["models"]}
    assert results["metrics"][:2] == ["forget_quality", "model_utility"]
    t_ratios = rows["target"]["forget_quality"]["meta"]["truth_ratios"]
    r_ratios = rows["retrain"]["forget_quality"]["meta"]["truth_ratios"]
    # the target knows the six forget answers (truth ratios ≪ 1); the retain model does not
    # (ratios scattered around 1 and above): KS p measured 0.002-0.026 over fixture seeds 0-3
    assert max(t_ratios) < 0.2 and np.median(r_ratios) > 1
    assert rows["target"]["forget_quality"]["value"] < 0.05
    assert rows["retrain"]["forget_quality"]["value"] == pytest.approx(1.0)
    assert rows["target"]["prob_f"]["value"] > rows["retrain"]["prob_f"]["value"] + 0.3
    assert rows["target"]["exact_mem"]["value"] > rows["retrain"]["exact_mem"]["value"]
    parts = rows["target"]["model_utility"]["meta"]["components"]
    assert set(parts) == {f"{m}_{s}" for m in ("prob", "rouge", "truth_ratio")
                          for s in ("r", "ra", "wf")}
    assert rows["target"]["model_utility"]["value"] == pytest.approx(
        S.harmonic_mean(list(parts.values())))
    md = render_markdown(results)
    assert "# TOFU evaluation" in md and "FQ ↑" in md and "KS test" in md


def test_cli_benchmark_tofu(tmp_path, monkeypatch, capsys, saved_models, world):
    from tests.helpers import run_cli
    from unlearn.cli import main

    data = write_tofu(tmp_path / "tofu", world)
    base = ["eval", str(saved_models["target"]), "--benchmark", "tofu", "--data", str(data),
            "--n-resamples", "50", "--tofu-max-new-tokens", "4"]
    code, _, err = run_cli(main, base + ["--metrics", "forget_quality"], capsys, monkeypatch)
    assert code == 2 and "forget_quality compares with the retrain model" in err
    code, _, err = run_cli(main, base + ["--forget-split", "forget05", "--metrics", "prob_f"],
                           capsys, monkeypatch)
    assert code == 2 and "forget05_perturbed" in err  # {forget} resolved, checked up front
    out = tmp_path / "out"
    code, stdout, err = run_cli(main, base + ["--retrain", str(saved_models["retrain"]),
                                              "--metrics", "forget_quality,exact_mem",
                                              "--out", str(out)], capsys, monkeypatch)
    assert code == 0, err
    assert "# TOFU evaluation" in stdout and "EM_f ↓" in stdout
    assert (out / "results.png").stat().st_size > 1000  # FQ on a log axis


def test_qa_training_examples_mask_the_prompt_and_pair_alternates(tokenizer, world):
    # unlearn trains on TOFU-layout QA (SplitRef.prompt_field) with the ids the metrics score
    from unlearn.alternates import idk_answers, paired_examples
    from unlearn.data import LMCollator, qa_example
    from unlearn.methods.altpo import AltPOConfig
    from unlearn.methods.dpo import DPOConfig

    row = world["knowmem"]["forget_qa"][0]
    pair = qa_ids(tokenizer, row["question"], row["answer"])
    ex = qa_example(tokenizer, row["question"], row["answer"], 256)
    eos = tokenizer.eos_token_id
    assert ex == {"input_ids": pair.prompt + pair.answer + [eos], "prompt_len": len(pair.prompt)}
    labels = LMCollator(0)([ex])["labels"][0].tolist()
    assert labels == [-100] * len(pair.prompt) + pair.answer + [eos]
    rows = [{**row, "alternate": ["Porto", "Ghent", "Oslo"]}]
    forget, alt = paired_examples(tokenizer, rows, "answer", "question",
                                  AltPOConfig(n_alternates=2), 256)
    assert forget == [ex, ex]  # one pair per alternate, the first n_alternates of the column
    assert alt == [qa_example(tokenizer, row["question"], a, 256) for a in ("Porto", "Ghent")]
    # raw text: each chunk gets a whole bundled "I don't know" text as its alternate
    forget, alt = paired_examples(tokenizer, [{"text": "Lisbon is far."}], "text", None,
                                  DPOConfig(), 256)
    assert len(forget) == len(alt) == 1
    text = tokenizer.decode(alt[0]["input_ids"], skip_special_tokens=True).strip()
    assert text in {a.strip() for a in idk_answers()}
