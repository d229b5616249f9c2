"""MIA scores and AUC on hand-computed inputs (eval/attacks/mia.py)."""

import math
import zlib

import numpy as np
import pytest
import torch

from eval.attacks.mia import (auc_vectorized, lowercase_score, lowest_k, loss_score,
                              min_k_plus_plus_score, min_k_score, mia_auc, zlib_entropy,
                              zlib_score)
from lethe.lm import _scores_of_row

LP = np.array([-1.0, -2.0, -3.0, -4.0, -5.0])


def test_min_k_takes_floor_of_k_n_lowest_and_negates():
    assert min_k_score(LP, 0.4) == pytest.approx(4.5)  # floor(2.0) = 2 lowest: -5, -4
    assert min_k_score(LP, 0.5) == pytest.approx(4.5)  # floor(2.5) = 2
    assert min_k_score(LP, 0.6) == pytest.approx(4.0)  # -5, -4, -3
    assert min_k_score(LP, 1.0) == pytest.approx(3.0)  # plain mean NLL
    assert min_k_score(LP, 0.1) == pytest.approx(5.0)  # floor(0.5) = 0 -> at least one token
    assert min_k_score(LP[::-1], 0.4) == min_k_score(LP, 0.4)  # order does not matter


def test_min_k_rejects_empty_and_bad_k():
    with pytest.raises(ValueError):
        min_k_score(np.zeros(0), 0.4)
    with pytest.raises(ValueError):
        lowest_k(LP, 0.0)


def test_loss_zlib_lowercase_by_hand():
    assert loss_score([-2.0, -4.0]) == pytest.approx(3.0)
    assert zlib_entropy("") == 8 and zlib_entropy("a") == 9  # zlib header + adler32 + block
    assert zlib_entropy("ab" * 500) < zlib_entropy("".join(chr(65 + (i * 7919) % 57)
                                                           for i in range(1000)))
    assert zlib_score([-2.0, -4.0], "a") == pytest.approx(3.0 / 9)
    assert zlib_score([-2.0, -4.0], "hello world") == pytest.approx(
        3.0 / len(zlib.compress(b"hello world")))
    assert lowercase_score([-2.0, -4.0], [-1.0, -2.0]) == pytest.approx(2.0)


def test_min_k_plus_plus_on_a_known_distribution():
    # next-token distribution p = (1/2, 1/4, 1/8, 1/8) at both positions;
    # mu = -1.75 ln2, E[(log p)^2] = 3.75 (ln2)^2, sigma = sqrt(0.6875) ln2
    p = torch.tensor([0.5, 0.25, 0.125, 0.125])
    logits = p.log().repeat(2, 1)  # (T=2, V=4)
    targets = torch.tensor([0, 2])  # observed tokens: p = 1/2, then p = 1/8
    s = _scores_of_row(logits, targets, moments=True)
    ln2 = math.log(2)
    np.testing.assert_allclose(s.logprobs, [-ln2, -3 * ln2], rtol=1e-6)
    np.testing.assert_allclose(s.mean, [-1.75 * ln2] * 2, rtol=1e-6)
    np.testing.assert_allclose(s.std, [math.sqrt(0.6875) * ln2] * 2, rtol=1e-5)
    z_hi = 0.75 / math.sqrt(0.6875)  # (−1 + 1.75) / sqrt(0.6875) = 0.9045
    z_lo = -1.25 / math.sqrt(0.6875)  # (−3 + 1.75) / sqrt(0.6875) = −1.5076
    assert min_k_plus_plus_score(s.logprobs, s.mean, s.std, k=0.5) == pytest.approx(-z_lo,
                                                                                    rel=1e-5)
    assert min_k_plus_plus_score(s.logprobs, s.mean, s.std, k=1.0) == pytest.approx(
        -(z_hi + z_lo) / 2, rel=1e-5)


def test_auc_direction_members_labelled_one():
    memorised_members, fresh = [1.0, 2.0], [3.0, 4.0]  # members less surprising
    assert mia_auc(memorised_members, fresh) == 0.0
    assert mia_auc(fresh, memorised_members) == 1.0  # members more surprising (over-unlearned)
    assert mia_auc([1.0, 3.0], [1.0, 3.0]) == 0.5  # indistinguishable
    assert mia_auc([2.0, 5.0], [1.0, 3.0, 4.0]) == pytest.approx(4 / 6)  # 4 of 6 pairs


def test_vectorised_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    m = rng.integers(0, 5, size=(7, 11)).astype(float)  # many ties
    n = rng.integers(0, 5, size=(7, 9)).astype(float)
    got = auc_vectorized(m, n)
    assert got.shape == (7,)
    for i in range(7):
        assert got[i] == pytest.approx(mia_auc(m[i], n[i]))
