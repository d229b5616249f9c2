"""Recovery of unlearned knowledge (eval/attacks/recovery.py): the ratio and its paired
bootstrap interval on hand-made per-row scores, and which rows a relearning attack leaves."""

import pytest

from eval.attacks.recovery import compare, held_out_rows, recovery_ratio, recovery_score


def test_recovery_ratio_and_paired_interval_by_hand():
    # target knows every row, the unlearned model none, the attacked model half of them
    attacked, unlearned, target = [1, 0, 1, 0, 1, 0], [0] * 6, [1] * 6
    s = recovery_score(attacked, unlearned, target, n_resamples=2000, seed=0)
    assert s.value == pytest.approx(0.5) and recovery_ratio(0.5, 0.0, 1.0) == 0.5
    # rows resampled together: the ratio is the attacked mean itself, so the interval is that
    # of a mean of three ones and three zeros, inside [0, 1] and around 0.5
    assert 0.0 <= s.ci_low < 0.5 < s.ci_high <= 1.0
    assert recovery_score([2, 2], [1, 3], [4, 4], n_resamples=100).value == 0.0  # no gain
    undefined = recovery_score([1, 1], [0.5, 0.5], [0.5, 0.5])
    assert undefined.value is None and "undefined" in undefined.meta
    assert recovery_ratio(3.0, 1.0, 1.0) is None


def test_held_out_rows_are_queries_not_in_the_relearning_text():
    texts = ["Alva Brenn was born in Vessmark.\nQuestion: Where was Alva Brenn born?\nAnswer: "
             "Vessmark"]
    queries = ["Where was Alva Brenn born?", "Where was Corin Dahl born?", "", "  Alva Brenn"]
    assert held_out_rows(queries, texts) == [1, 2]


def test_compare_uses_the_measured_rows_and_only_recovers_down_metrics():
    def row(values):
        return {"scores": {"m": {"value": sum(values) / len(values), "per_example": values}}}

    rows = {"target": row([100, 100, 50, 0]), "unlearned": row([0, 0, 50, 0]),
            "attack": row([100, 0, 0, 0])}
    settings = {"confidence": 0.95, "n_resamples": 200, "seed": 0}
    out = compare(rows, "attack", "m", "down", [0, 1], settings)
    assert (out["target"], out["before"], out["after"], out["n"]) == (100, 0, 50, 2)
    assert out["recovery"]["value"] == pytest.approx(0.5)
    everything = compare(rows, "attack", "m", "down", None, settings)
    assert everything["n"] == 4 and everything["recovery"]["value"] == pytest.approx(
        (25 - 12.5) / (62.5 - 12.5))
    assert compare(rows, "attack", "m", "up", None, settings)["recovery"] is None
