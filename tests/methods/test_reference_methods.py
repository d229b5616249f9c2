"""The method losses against their reference code, written out by hand here:

- SimNPO with its retain term, as locuslab/open-unlearning src/trainer/unlearn/simnpo.py and
  configs/trainer/SimNPO.yaml (β 4.5, δ 0, forget weight 0.125, retain NLL weight 1);
- `reference_impl: muse_code`: MUSE's released code (swj0419/muse_bench
  baselines/baselines/iterative.py) — NPO on raw logits `-F.logsigmoid(β·(z_ref − z)).mean()·2/β`
  and KLR `F.kl_div(z, z_ref, reduction='batchmean', log_target=True)` — and Unlearn-Simple's
  MUSE SimNPO `-F.logsigmoid(β·(−z − δ)).mean()·2/β`.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unlearn.methods import get_method
from unlearn.methods.reference import make_reference

from tests.methods.test_losses import loss_of, mean_nll, seq_nll


def _unpadded(seed: int, n: int = 3, length: int = 9, vocab: int = 128) -> dict:
    """A batch part of equal-length rows (MUSE's chunks have no padding)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _perturbed_reference(model, name: str, **cfg):
    """A reference at the current weights, then θ moved away from it."""
    method = get_method(name)
    config = method.config_cls(**cfg)
    ref = make_reference(model, method, lora_enabled=False, cfg=config)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return ref


@torch.no_grad()
def test_simnpo_default_is_open_unlearnings_with_retain_nll(model, batch):
    cfg = get_method("simnpo").config_cls()
    assert (cfg.beta, cfg.delta, cfg.forget_weight, cfg.alpha) == (4.5, 0.0, 0.125, 1.0)
    s, c = seq_nll(model, batch["forget"])
    for delta in (0.0, 0.4):
        # forget_loss = NLL_sum/|y| − δ;  −logsigmoid(β·forget_loss).mean()·2/β
        forget = -F.logsigmoid(4.5 * (s / c - delta)).mean() * 2 / 4.5
        want = 0.125 * forget.item() + 1.0 * mean_nll(model, batch["retain"])
        loss, logs = loss_of("simnpo", model, batch, delta=delta)
        assert loss.item() == pytest.approx(want, rel=1e-5)
        assert logs["retain_nll"] == pytest.approx(mean_nll(model, batch["retain"]), rel=1e-5)
    with pytest.raises(Exception, match="retain"):
        loss_of("simnpo", model, {"forget": batch["forget"]})


@torch.no_grad()
def test_muse_code_switch_needs_a_reference_model_only_when_on():
    npo = get_method("npo")
    assert not npo.config_cls().wants_ref_model
    assert npo.config_cls(reference_impl="muse_code").wants_ref_model
    for name in ("npo", "npo_gdr", "npo_klr", "ga_klr", "simnpo"):
        assert get_method(name).config_cls().reference_impl == "paper"  # never the default


@torch.no_grad()
def test_muse_code_npo_is_muses_raw_logit_arithmetic(model):
    ref = _perturbed_reference(model, "npo", reference_impl="muse_code")
    part = _unpadded(1)
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    ref_logits = ref.logits(part)
    beta = 0.1
    neg_log_ratio = ref_logits - logits  # MUSE: outputs_f_ref.logits - outputs_f.logits
    want = -F.logsigmoid(beta * neg_log_ratio).mean() * 2 / beta
    got, _ = loss_of("npo", model, {"forget": part}, ref=ref, beta=beta,
                     reference_impl="muse_code")
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    paper, _ = loss_of("npo", model, {"forget": part}, ref=ref, beta=beta)
    assert abs(paper.item() - got.item()) > 1e-3  # a different number from the paper's NPO


@torch.no_grad()
def test_muse_code_klr_terms_are_kl_div_on_raw_logits(model):
    ref = _perturbed_reference(model, "npo_klr", reference_impl="muse_code")
    forget, retain = _unpadded(2), _unpadded(3)
    z = model(input_ids=retain["input_ids"], attention_mask=retain["attention_mask"]).logits
    kl_r = F.kl_div(z, ref.logits(retain), reduction="batchmean", log_target=True)
    zf = model(input_ids=forget["input_ids"], attention_mask=forget["attention_mask"]).logits
    npo = -F.logsigmoid(0.1 * (ref.logits(forget) - zf)).mean() * 2 / 0.1
    batch = {"forget": forget, "retain": retain}
    got, logs = loss_of("npo_klr", model, batch, ref=ref, reference_impl="muse_code")
    assert logs["retain_kl"] == pytest.approx(kl_r.item(), rel=1e-5)
    assert got.item() == pytest.approx((npo + kl_r).item(), rel=1e-5)
    ga, _ = loss_of("ga_klr", model, batch, ref=ref, reference_impl="muse_code")
    loss_f = model(input_ids=forget["input_ids"], labels=forget["labels"]).loss
    assert ga.item() == pytest.approx((-loss_f + kl_r).item(), rel=1e-5)


@torch.no_grad()
def test_muse_code_simnpo_is_unlearn_simples(model):
    forget, retain = _unpadded(4), _unpadded(5)
    z = model(input_ids=forget["input_ids"], attention_mask=forget["attention_mask"]).logits
    beta, delta = 0.75, 3.0  # Unlearn-Simple's MUSE News setting (its --gamma 3.0)
    simnpo = -F.logsigmoid(beta * (-z - delta)).mean() * 2 / beta
    loss_r = model(input_ids=retain["input_ids"], labels=retain["labels"]).loss
    got, _ = loss_of("simnpo", model, {"forget": forget, "retain": retain}, beta=beta,
                     delta=delta, forget_weight=1.0, alpha=0.1, reference_impl="muse_code")
    assert got.item() == pytest.approx((simnpo + 0.1 * loss_r).item(), rel=1e-5)
    assert math.isfinite(got.item())


def test_muse_baseline_recipes_follow_muses_scripts():
    """baselines/scripts/unlearn_news.sh / unlearn_books.sh: task vector alpha 5.0, NPO beta 0.1,
    weights 1, lr 1e-5 constant for 10 epochs; MUSE's arithmetic for NPO/KLR; WHP mixed."""
    from unlearn.recipe import expand_variants, load_unlearn_recipe

    for path in ("recipes/muse_news_baselines.yaml", "recipes/harry_potter_baselines.yaml"):
        recipe = load_unlearn_recipe(path)
        assert recipe.train["learning_rate"] == 1e-5 and recipe.train["num_train_epochs"] == 10
        assert recipe.train["lr_scheduler_type"] == "constant"
        methods = {label: v.method for label, v in expand_variants(recipe, path)}
        assert methods["task_vector"].alpha == 5.0
        assert (methods["whp"].mode, methods["whp"].alpha) == ("mixture", 1.0)
        for name in ("ga_klr", "npo", "npo_gdr", "npo_klr"):
            assert methods[name].reference_impl == "muse_code"
        assert methods["npo"].beta == 0.1 and methods["npo_klr"].alpha == 1.0
