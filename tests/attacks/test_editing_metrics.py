"""Rewrite score and Δ-accuracy on hand-computable cases."""

import pytest

from eval.attacks.editing import (accuracy, editing_metrics, rewrite_score_erasure,
                                  rewrite_score_injection)
from eval.attacks.scoring import fill


def test_rewrite_scores_by_hand():
    # (0.5 - 0.25) / 0.5 = 0.5; an increase counts 0; p_before = 0 counts 0
    assert rewrite_score_erasure([0.5, 0.2, 0.0], [0.25, 0.4, 0.0]) == pytest.approx(0.5 / 3)
    assert rewrite_score_injection([0.3, 0.1], [0.2, 0.2]) == 0.5


def test_editing_metrics_of_a_model_that_lost_one_answer(tok, facts, trained, forgot_vessmark):
    forget, retain = facts
    prompts = [fill(f["prompt"], f["subject"]) for f in forget + retain]
    acc, hits = accuracy(trained, tok, prompts, [f["target_true"] for f in forget + retain])
    assert acc == 1.0 and all(hits)  # the trained model knows all six facts
    same = editing_metrics(trained, tok, forget, base=trained, retain_facts=retain)
    assert same["rewrite_score"] == 0.0
    assert same["delta_acc_random"] == 0.0 and same["delta_acc_neighborhood"] == 0.0
    m = editing_metrics(forgot_vessmark, tok, forget, base=trained, retain_facts=retain)
    # forget: Alva->Vessmark (erased, score ~1), Corin->Olbridge, Edda->Quenby (kept, 0)
    assert m["rewrite_score"] == pytest.approx(1 / 3, abs=0.01)
    assert m["forget_acc_before"] == 1.0 and m["forget_acc_after"] == pytest.approx(2 / 3)
    # neighbourhood: 6 prompts, 2 of them answered 'Vessmark'; random (retain): 1 of 3
    assert m["n_neighborhood"] == 6 and m["delta_acc_neighborhood"] == pytest.approx(2 / 6)
    assert m["n_random"] == 3 and m["delta_acc_random"] == pytest.approx(1 / 3)
    assert [r["greedy_after"] for r in m["per_fact"]] == [False, True, True]
    alone = editing_metrics(forgot_vessmark, tok, forget)  # no base: no scores, no deltas
    assert "rewrite_score" not in alone and "delta_acc_neighborhood" not in alone
    assert alone["acc_neighborhood_after"] == pytest.approx(4 / 6)
