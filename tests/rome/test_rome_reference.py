"""Lethe's edit against the reference code, written out here by hand.

- ROME (kmeng01/rome rome/compute_v.py, rome/compute_u.py, rome/rome_main.py): the v* loss
  NLL + kl_factor · KL(at the subject's last token of "{} is a") + λ · ||δ|| / ||v_init||²,
  the left vector C⁻¹ k* (k* the mean key over the contexts), the right vector
  (v* − W k_p − b) / (k_p · C⁻¹ k*) with k_p the bare prompt's key, ΔW = left ⊗ right;
  the edit layer of the published hyperparameters.
- Patil, Hase & Bansal (Vaidehi99/InfoDeletionAttacks rome/compute_v.py): the head-projection
  hinge on sorted lens probabilities (k-th of the list that includes the target) and the
  max-entropy loss, neither with an erasure term.
"""

import math

import pytest
import torch

import edit_toy
from lethe.lm import encode_pair
from unlearn.rome import EditConfig, edit_model, restore
from unlearn.rome.model_layout import default_layer
from unlearn.rome.objectives import OBJECTIVES, ObjectiveBatch, margin_term
from unlearn.rome.prompts import make_row
from unlearn.rome.values import decay_term, kl_positions

FACT_PROMPT, SUBJECT, NEW = "{} was born in", "Alva Brenn", "Olbridge"  # " Olbridge": 1 token


def test_decay_term_by_hand():
    delta, v = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 2.0])
    assert decay_term(delta, v, 1).item() == pytest.approx(5 / 4)  # ROME's code: ||δ|| / ||v||²
    assert decay_term(delta, v, 2).item() == pytest.approx(25 / 4)


def test_kl_prompts_are_read_at_the_subjects_last_token(tok):
    row = make_row(tok, "{} is a", SUBJECT, "kl")
    n_subject = len(tok(SUBJECT)["input_ids"])
    assert kl_positions([row], "subject") == [n_subject - 1]  # ROME's lookup_idxs
    assert kl_positions([row], "last") == [len(row.ids) - 1] != [n_subject - 1]


def test_default_edit_layer_is_the_published_one():
    assert default_layer("gpt2", 48)[0] == 17  # kmeng01/rome hparams/ROME/gpt2-xl.json
    assert default_layer("gpt2", 36)[0] == 12 and default_layer("gpt2", 24)[0] == 8
    assert default_layer("gptj", 28)[0] == 5  # EleutherAI_gpt-j-6B.json
    assert default_layer("llama", 32)[0] == 5  # zjunlp/EasyEdit hparams/ROME/llama-7b.yaml
    assert default_layer("gpt2", 12)[0] == 4  # GPT-2 medium's 8/24 of the depth
    assert default_layer("llama", 30)[0] == 5  # 5/32 of 30 = 4.7
    assert default_layer("llama", 4)[0] == 1  # 5/16 of 4 = 1.25
    assert default_layer("falcon", 10)[0] == 2  # no published configuration: n // 5


def _papers_hinge(lens, target, k):
    """Vaidehi99/InfoDeletionAttacks rome/compute_v.py, written out: softmax, sort, the k-th
    from each end of the sorted list (target included), hinge without margin, means."""
    probs = torch.softmax(lens, -1)
    ordered, _ = torch.sort(probs, -1)
    min_topk, max_bottomk = ordered[..., -k], ordered[..., k - 1]
    p_t = probs[..., target]
    return (torch.clamp(p_t - min_topk, min=0).mean()
            + torch.clamp(max_bottomk - p_t, min=0).mean())


def test_head_projection_hinge_is_the_papers():
    p = torch.tensor([0.4, 0.3, 0.2, 0.1])
    lens = p.log().view(1, 1, 4)  # (L, R, V): softmax gives p back
    # answer 2nd of 4, k = 2: the paper's hinge is 0 (it compares with itself: the off-by-one)
    assert margin_term(lens, torch.tensor([1]), 2, 0.0).item() == pytest.approx(0.0, abs=1e-7)
    # over the *other* tokens the 2nd largest is 0.2, so the answer still costs 0.1
    assert margin_term(lens, torch.tensor([1]), 2, 0.0, "prob", "others").item() == \
        pytest.approx(0.1)
    assert margin_term(lens, torch.tensor([0]), 2, 0.0).item() == pytest.approx(0.1)
    torch.manual_seed(0)
    lens = torch.randn(3, 1, 50) * 3  # one prompt, as the paper's code has one target
    for k in (1, 4, 7):
        for target in (0, 17, 49):
            got = margin_term(lens, torch.tensor([target]), k, 0.0)
            assert got.item() == pytest.approx(_papers_hinge(lens, target, k).item(), abs=1e-7)


def test_defense_losses_have_no_erasure_term_by_default():
    torch.manual_seed(1)
    lens = torch.randn(2, 3, 20)  # (L, R, V)
    logp = torch.tensor([[-0.5], [-1.0], [-2.0]])  # one answer token per prompt
    batch = ObjectiveBatch(logp, torch.ones(3, 1), torch.tensor([3, 4, 5]), lens)
    cfg = EditConfig()
    assert (cfg.erasure_weight, cfg.margin_on, cfg.margin_rank, cfg.defense_margin) == \
        (0.0, "prob", "all", 0.0)
    hinge = sum(_papers_hinge(lens[:, r:r + 1], t, cfg.defense_k) for r, t in
                enumerate((3, 4, 5))) / 3  # each prompt's mean, then the mean over prompts
    assert OBJECTIVES["head_projection"].loss(batch, cfg)[0].item() == \
        pytest.approx(hinge.item(), abs=1e-6)
    entropy = torch.distributions.Categorical(probs=torch.softmax(lens, -1)).entropy().mean()
    assert OBJECTIVES["max_entropy"].loss(batch, cfg)[0].item() == \
        pytest.approx(-entropy.item(), abs=1e-6)  # the paper: -entropy (+ KL + decay)


def _keys_and_values(model, module, ids, position=None):
    """(keys into `module`, `module`'s outputs) of one sequence, at `position` or all (T, d)."""
    seen = {}
    handle = module.register_forward_hook(lambda m, i, o: seen.update(k=i[0], v=o))
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))
    handle.remove()
    at = slice(None) if position is None else position
    return seen["k"][0, at].double(), seen["v"][0, at].double()


def _rome_reference(model, tok, module, corpus, contexts, prompt, subject, v_star):
    """ΔW (d_ff, d_model) of kmeng01/rome for GPT-2's Conv1D: C from the corpus tokens,
    k* = mean key over the contexts, k_p the bare prompt's key, u = C⁻¹ k* / ||C⁻¹ k*||,
    right = (v* − out(k_p)) / (k_p · u), ΔW = u rightᵀ."""
    keys = torch.cat([_keys_and_values(model, module, tok(text)["input_ids"])[0]
                      for text in corpus])  # (tokens, d_ff)
    cov = keys.T @ keys / len(keys)  # the uncentred second moment (ROME's mom2)
    keys = []
    for context in contexts:
        row = make_row(tok, context.replace("{}", prompt), subject, "ref")
        keys.append(_keys_and_values(model, module, list(row.ids), row.subject_index)[0])
    k_star = torch.stack(keys).mean(0)
    bare = make_row(tok, prompt, subject, "ref")
    k_p, out_p = _keys_and_values(model, module, list(bare.ids), bare.subject_index)
    u = torch.inverse(cov) @ k_star
    u = u / u.norm()
    right = (v_star.double() - out_p) / (k_p @ u)
    return torch.outer(u, right)


def test_gpt2_delta_w_matches_romes_formula(tok, facts):
    model = edit_toy.gpt2(tok)
    corpus = edit_toy.sentences()[:12]
    fact = dict(facts[0][0], target_new=NEW)
    cfg = EditConfig(objective="error_injection", layer=1, context_lengths=((3, 2),),
                     v_steps=5)
    name = "transformer.h.1.mlp.c_proj"
    module = model.get_submodule(name)
    before = module.weight.detach().clone().double()
    record = edit_model(model, tok, [fact], cfg, corpus)
    after = module.weight.detach().double()
    restore(model, record)  # the reference reads the unedited model
    edit = record.edits[0]
    want = _rome_reference(model, tok, module, corpus, record.contexts, fact["prompt"],
                           fact["subject"], edit.v_star)
    rel = float((after - before - want).norm() / want.norm())
    assert rel <= 1e-4, rel


def test_v_star_loss_terms_are_romes(tok, facts):
    """losses[1] (after one Adam step) recomputed from ROME's definition with δ₁."""
    model = edit_toy.gpt2(tok, seed=3)
    fact = dict(facts[0][0], target_new=NEW)
    cfg = EditConfig(objective="error_injection", layer=1, context_lengths=(), v_steps=2,
                     kl_factor=0.5, use_covariance=False)
    module = model.get_submodule("transformer.h.1.mlp.c_proj")
    record = edit_model(model, tok, [fact], cfg)
    restore(model, record)
    edit = record.edits[0]
    prompt_row = make_row(tok, fact["prompt"], SUBJECT, "p")
    _, v_init = _keys_and_values(model, module, list(prompt_row.ids), prompt_row.subject_index)
    delta = edit.v_star.double() - v_init  # δ₁: the final δ after one step
    p_ids, a_ids = encode_pair(tok, fact["prompt"].format(SUBJECT), NEW)
    kl_row = make_row(tok, "{} is a", SUBJECT, "kl")

    def run(ids, position, add):
        handle = module.register_forward_hook(
            lambda m, i, o: o.index_put((torch.tensor([0]), torch.tensor([position])),
                                        add.float()[None], accumulate=True))
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        handle.remove()
        return torch.log_softmax(logits, -1)

    logp = run(list(p_ids) + list(a_ids), prompt_row.subject_index, delta)
    nll = -sum(logp[len(p_ids) - 1 + i, t] for i, t in enumerate(a_ids)) / len(a_ids)
    kl_new = run(list(kl_row.ids), kl_row.subject_index, delta)[kl_row.subject_index]
    kl_old = run(list(kl_row.ids), kl_row.subject_index, 0 * delta)[kl_row.subject_index]
    kl = (kl_new.exp() * (kl_new - kl_old)).sum()  # torch kl_div(init, new, log_target)
    decay = delta.norm() / v_init.norm() ** 2
    want = nll + cfg.kl_factor * kl + cfg.weight_decay * decay
    assert len(edit.losses) == 2
    assert edit.losses[1] == pytest.approx(float(want), rel=1e-4, abs=1e-5)
    assert math.isfinite(edit.losses[0])
