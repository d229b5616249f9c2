"""The reference-model and GradNorm MIA scores against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.attacks.mia import default_mia_names, score_texts
from lethe.errors import LetheError
from lethe.lm import LM

TEXTS = ["Alina Varga was born in Lisbon.", "Greta keeps bees near the old river wall."]


def mean_nll(model, tokenizer, text):
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()  # mean over tokens 1..n-1


def test_reference_score_is_loss_minus_reference_loss(target_model, random_model, tokenizer):
    lm, ref = LM(target_model, tokenizer, progress=False), LM(random_model, tokenizer,
                                                               progress=False)
    got = score_texts(lm, TEXTS, names=["ref", "loss"], reference=ref)
    for i, text in enumerate(TEXTS):
        want = mean_nll(target_model, tokenizer, text) - mean_nll(random_model, tokenizer, text)
        assert got["ref"][i] == pytest.approx(want, rel=1e-4)
        assert got["loss"][i] == pytest.approx(mean_nll(target_model, tokenizer, text), rel=1e-4)
    with pytest.raises(LetheError, match="--reference"):
        score_texts(lm, TEXTS, names=["ref"])


def test_defaults_add_ref_only_with_a_reference_and_never_gradnorm():
    assert "ref" not in default_mia_names(False) and "ref" in default_mia_names(True)
    assert "gradnorm" not in default_mia_names(True)
    assert {"loss", "zlib", "lowercase", "min_k", "min_k_pp"} <= set(default_mia_names(False))


@pytest.mark.parametrize("p", [1.0, 2.0, float("inf")])
def test_gradnorm_is_mean_per_tensor_norm_of_the_loss_gradient(p, target_model, tokenizer):
    model = target_model
    first = next(model.parameters())
    first.requires_grad_(False)  # a frozen parameter must come back frozen
    try:
        got = LM(model, tokenizer, progress=False).grad_norms(TEXTS, p=p)
        assert not first.requires_grad
        assert all(q.grad is None for q in model.parameters())  # .grad left untouched
        for text, value in zip(TEXTS, got):
            copy = [q.detach().clone().requires_grad_(True) for q in model.parameters()]
            params = dict(zip([n for n, _ in model.named_parameters()], copy))
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            out = torch.func.functional_call(model, params, args=(),
                                             kwargs={"input_ids": ids, "labels": ids})
            out.loss.backward()
            norms = [q.grad.norm(p).item() for q in copy if q.grad is not None]
            assert value == pytest.approx(float(np.mean(norms)), rel=1e-4)
    finally:
        first.requires_grad_(True)


def test_privleak_reports_gradnorm_and_reference_aucs(target_model, random_model, tokenizer,
                                                      world):
    from eval.muse.privleak import privleak, resolve_retrain_auc

    forget = [r["text"] for r in world["privleak"]["forget"]]
    holdout = [r["text"] for r in world["privleak"]["holdout"]]
    score = privleak(LM(target_model, tokenizer, progress=False), forget, holdout,
                     retrain=resolve_retrain_auc(0.5), names=["gradnorm", "ref"], n_resamples=200,
                     reference=LM(random_model, tokenizer, progress=False))
    attacks = score.meta["attacks"]
    assert set(attacks) == {"min_k", "gradnorm", "ref"}
    # the target memorised the forget texts: smaller gradients and a larger likelihood ratio
    # to the untrained reference than on held-out texts (members score lower: AUC well below ½)
    assert attacks["gradnorm"]["auc"] < 0.3 and attacks["ref"]["auc"] < 0.3, \
        (attacks["gradnorm"]["auc"], attacks["ref"]["auc"])
