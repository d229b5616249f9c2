"""Each deletion objective moves the right quantity the right way (random tiny models; each fact
edited alone, measured on the edited model, then restored)."""

import math
from dataclasses import replace

import pytest
import torch

import edit_toy
from eval.attacks.extraction import head_projection
from lethe.lens import iter_prompt_lens
from eval.attacks.scoring import fill, score_answers
from unlearn.rome import EditConfig, edit_model, restore
from unlearn.rome.objectives import OBJECTIVES, false_answer, margin_term

# These tests measure each objective's direction with the settings they were written for
# (Lethe before issue #14): squared decay, KL at the prompt's last token, the update exact for
# k*; the reference defaults themselves are pinned in test_rome_reference.py.
KW = dict(layer=1, context_lengths=(), v_steps=10, v_lr=0.5, clamp_norm_factor=10.0,
          cov_ridge=1e-3, weight_decay_power=2, kl_position="last", update_key="mean")


def _log_ratios(model, tok, facts, corpus, cfg, measure):
    """log(measure after / measure before) per fact, each fact edited on its own."""
    out = []
    for fact in facts:
        before = measure(model, fact)
        record = edit_model(model, tok, [fact], cfg, corpus)
        after = measure(model, fact, record.edits[0].answer)
        restore(model, record)
        out.append(math.log(after / before))
    return out


def _p(tok, template_key="prompt"):
    def measure(model, fact, answer=None):
        answer = answer or fact.get("_answer") or fact["target_true"]
        prompt = fill(fact[template_key] if template_key == "prompt" else fact["paraphrases"][0],
                      fact["subject"])
        return score_answers(model, tok, [prompt], [answer])[0].prob
    return measure


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_fact_erasure_lowers_the_true_answer(arch, tok, facts, corpus):
    model = getattr(edit_toy, arch)(tok)
    ratios = _log_ratios(model, tok, facts[0] + facts[1], corpus,
                         EditConfig(objective="fact_erasure", **KW), _p(tok))
    # measured (gpt2): mean log ratio -0.21, p x 0.81. A lone leading "Ġ" token of an answer
    # is formatting and left out of the objective, so the edit cannot cheat by lowering it.
    assert sum(ratios) / len(ratios) < math.log(0.85), ratios
    assert sum(r < 0 for r in ratios) >= 5


@pytest.mark.parametrize("objective", ["error_injection", "empty_response"])
def test_target_objectives_raise_their_target(objective, tok, facts, corpus):
    model = edit_toy.llama(tok)
    rows = facts[0] + facts[1]
    cfg = EditConfig(objective=objective, dummy_target="I don't know", **KW)
    answers = [OBJECTIVES[objective].answer(f, cfg, rows) for f in rows]
    if objective == "empty_response":
        assert set(answers) == {"I don't know"}
    else:  # a false answer of the same relation, never the true one
        assert all(a != f["target_true"] for a, f in zip(answers, rows))
    # each fact is edited alone, so error_injection gets its false answer as target_new
    ratios = _log_ratios(model, tok, [dict(f, target_new=a, _answer=a)
                                      for f, a in zip(rows, answers)], corpus, cfg, _p(tok))
    assert sum(ratios) / len(ratios) > math.log(1.3), ratios


def test_false_answer_prefers_target_new_and_needs_a_pool(facts):
    from lethe.errors import LetheError

    cfg = EditConfig(objective="error_injection")
    rows = facts[0] + facts[1]
    assert false_answer(dict(rows[0], target_new="Quenby"), cfg, rows) == "Quenby"
    # no later answer than 'Vessmark' among {Olbridge, Quenby, Rustow}: wraps to the first
    assert false_answer(rows[0], cfg, rows) == "Olbridge"
    assert false_answer(rows[1], cfg, rows) == "Quenby"  # next after 'Olbridge'
    with pytest.raises(LetheError, match="target_new"):
        false_answer(rows[0], cfg, [rows[0]])


def test_input_rephrasing_lowers_the_answer_after_a_paraphrase(tok, facts, corpus):
    model = edit_toy.llama(tok)
    measure = _p(tok, "paraphrase")
    rows = facts[0] + facts[1]
    with_defense = _log_ratios(model, tok, rows, corpus,
                               EditConfig(objective="input_rephrasing", **KW), measure)
    assert sum(with_defense) / len(with_defense) < math.log(0.8), with_defense


def test_margin_term_is_zero_exactly_outside_top_and_bottom_k():
    lens = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]])  # (L=1, R=1, V=6)
    for answer, k, expected in [(2, 2, 0.0),  # 3rd of 6: outside top-2 and bottom-2
                                (5, 2, 5.0 - 3.0),  # top: z_a − z_(2) among others (4, 3)
                                (0, 2, 2.0 - 0.0),  # bottom: z_(−2) among others (1, 2) − z_a
                                (2, 3, 3.0 - 2.0)]:  # k=3: others' 3rd smallest is 3 > z_a
        got = margin_term(lens, torch.tensor([answer]), k, 0.0, "logit", "others")
        assert got.item() == pytest.approx(expected), (answer, k)
    assert margin_term(lens, torch.tensor([2]), 2, 0.5, "logit", "others").item() == \
        pytest.approx(0.0)
    assert margin_term(lens, torch.tensor([2]), 2, 1.5, "logit", "others").item() == \
        pytest.approx(0.5)


def test_head_projection_defense_pushes_the_answer_out_of_top_and_bottom_k(tok, facts, corpus):
    """The defense lowers its own hinge (the answer's distance inside the top/bottom-k of the
    lens at the defended layers) far below where it started and below what plain fact erasure
    leaves. Counting attack successes on the two or three facts a random toy ranks in its top
    or bottom k instead failed in 4 of 6 fixture seeds (the robustness sweep)."""
    from eval.attacks.extraction import _first_tokens

    model = edit_toy.llama(tok, seed=1)
    rows = facts[0] + facts[1]
    k, layers, margin = 30, (2, 3), 0.5  # the defended layers: every block after edit layer 1
    prompts = [fill(f["prompt"], f["subject"]) for f in rows]
    reads, firsts = _first_tokens(tok, prompts, [f["target_true"] for f in rows])

    def hinge(i):  # the defense's objective on fact i, as the attack reads the lens
        (_, lens), = list(iter_prompt_lens(model, tok, [reads[i]], layers))  # (L, 1, V)
        return margin_term(lens, torch.tensor([firsts[i]]), k, margin, "logit", "others").item()

    before_hits = head_projection(model, tok, prompts, [f["target_true"] for f in rows],
                                  layers=layers, k=k).success
    cfg = EditConfig(objective="head_projection", defense_k=k, defense_margin=margin,
                     margin_on="logit", margin_rank="others", erasure_weight=1.0,
                     layer_index="block", **KW)
    before, defended, erased = [], [], []
    for i, fact in enumerate(rows):
        before.append(hinge(i))
        for objective, out in (("head_projection", defended), ("fact_erasure", erased)):
            record = edit_model(model, tok, [fact], replace(cfg, objective=objective), corpus)
            out.append(hinge(i))
            restore(model, record)
    assert sum(before) > 0  # some answers start inside a k-set (by at least the margin)
    # measured over fixture seeds 0-5 (sums over the 6 facts): defended / before 0.28-0.59,
    # defended < erased in every seed (closest: 1.16 vs 1.32)
    assert sum(defended) < 0.75 * sum(before)  # the defense removes much of it...
    assert sum(defended) < sum(erased)  # ...where plain fact erasure leaves more
    assert head_projection(model, tok, prompts, [f["target_true"] for f in rows],
                           layers=layers, k=k).success == before_hits  # restored


def test_max_entropy_defense_raises_lens_entropy(tok, facts, corpus):
    model = edit_toy.llama(tok, seed=2)
    layers = (2, 3)

    def entropy(fact, answer=None):
        prompt = fill(fact["prompt"], fact["subject"])
        (_, lens), = list(iter_prompt_lens(model, tok, [prompt], layers))
        logp = torch.log_softmax(lens, -1)
        return float(-(logp.exp() * logp).sum(-1).mean())

    cfg = EditConfig(objective="max_entropy", defense_weight=1.0, erasure_weight=1.0, **KW)
    ratios = _log_ratios(model, tok, facts[0] + facts[1], corpus, cfg,
                         lambda m, f, a=None: entropy(f))
    assert sum(r > 0 for r in ratios) >= 5, ratios
