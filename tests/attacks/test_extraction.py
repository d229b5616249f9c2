"""Extraction attacks on constructed cases: success exactly when the answer is a candidate, and
the budgets B = 2k|L|, 2k(|L|-1), n·m."""

import pytest
import torch

import edit_toy
from eval.attacks.extraction import (AttackParams, candidate_hits, head_projection,
                                     input_rephrasing, probability_delta, run_attack)
from lethe.lens import iter_prompt_lens
from lethe.lm import encode_pair
from lethe.errors import LetheError

PROMPT = "Alva Brenn was born in"
BLOCK = dict(layer_index="block")  # these tests number layers by block (lethe/lens.py)


def test_candidate_hits_by_hand():
    scores = torch.tensor([[[0.1, 0.5, 0.2, 0.9, 0.0]]])  # (L=1, b=1, V=5)
    hit = lambda a, k: candidate_hits(scores, torch.tensor([a]), k)  # noqa: E731
    assert hit(3, 1)["top"].item() and not hit(3, 1)["bottom"].item()
    assert hit(4, 1)["bottom"].item() and not hit(4, 1)["top"].item()
    assert not (hit(2, 1)["top"] | hit(2, 1)["bottom"]).item()  # 3rd of 5: neither at k=1
    assert hit(2, 3)["top"].item()  # 0.9, 0.5, 0.2
    assert hit(2, 1)["rank_top"].item() == 2 and hit(2, 1)["rank_bottom"].item() == 2
    with pytest.raises(LetheError):
        hit(0, 6)


def _round_trip_ranking(tok, scores):
    """Token ids sorted by score (high first) that are the first token of their own decoding as
    an answer, so an answer string with exactly that first token exists."""
    out = []
    for tid in scores.argsort(descending=True).tolist():
        text = tok.decode([tid])
        if text.strip() and encode_pair(tok, PROMPT, text.strip())[1][0] == tid:
            out.append((tid, text.strip()))
    return out


def test_head_projection_succeeds_exactly_on_top_or_bottom_k(tok):
    model = edit_toy.llama(tok)
    (_, lens), = list(iter_prompt_lens(model, tok, [PROMPT], [1]))
    scores = lens[0, 0]  # (V,) layer 1
    ranked = _round_trip_ranking(tok, scores)
    top_id, top_answer = ranked[0]
    rank = int((scores > scores[top_id]).sum())  # tokens above it that cannot be answers
    res = head_projection(model, tok, [PROMPT], [top_answer], layers=[1], k=rank + 1, **BLOCK)
    assert res.success == [True] and res.details[0]["hit_layers"] == [1]
    assert res.details[0]["best_rank_top"] == rank and res.budget == 2 * (rank + 1)
    if rank > 0:
        assert not head_projection(model, tok, [PROMPT], [top_answer], layers=[1],
                                   k=rank, **BLOCK).success[0]
    low_id, low_answer = ranked[-1]
    brank = int((scores < scores[low_id]).sum())
    res = head_projection(model, tok, [PROMPT], [low_answer], layers=[1], k=brank + 1, **BLOCK)
    assert res.success == [True] and res.details[0]["best_rank_bottom"] == brank
    mid_id, mid_answer = ranked[len(ranked) // 2]
    res = head_projection(model, tok, [PROMPT], [mid_answer], layers=[1], k=4, **BLOCK)
    assert res.success == [False] and res.budget == 8
    res = head_projection(model, tok, [PROMPT, PROMPT], [mid_answer, top_answer],
                          layers=[0, 1, 2, 3], k=3, **BLOCK)
    assert res.budget == 2 * 3 * 4 and len(res.success) == 2


def test_probability_delta_uses_differences_of_consecutive_layers(tok):
    model = edit_toy.gpt2(tok)
    (_, lens), = list(iter_prompt_lens(model, tok, [PROMPT], [1, 2, 3]))
    probs = torch.softmax(lens[:, 0], -1)  # (3, V)
    diff = probs[2] - probs[1]  # the pair 2->3
    ranked = _round_trip_ranking(tok, diff)
    tid, answer = ranked[0]
    rank = int((diff > diff[tid]).sum())
    res = probability_delta(model, tok, [PROMPT], [answer], layers=[2, 3], k=rank + 1, **BLOCK)
    assert res.success == [True] and res.details[0]["hit_layers"] == ["2->3"]
    assert res.budget == 2 * (rank + 1) * 1
    res = probability_delta(model, tok, [PROMPT], [answer], layers=[1, 2, 3], k=2, **BLOCK)
    assert res.budget == 2 * 2 * 2
    with pytest.raises(LetheError, match="two layers"):
        probability_delta(model, tok, [PROMPT], [answer], layers=[2], k=2, **BLOCK)


def test_rephrase_attack_finds_known_answers_and_is_seeded(tok, facts, trained):
    forget = facts[0]
    params = AttackParams(paraphrases=2, samples=2, seed=0, new_tokens=None, match="prefix")
    res = run_attack("rephrase", trained, tok, forget, params)
    assert res.rate == 1.0 and res.budget == 4  # the trained model knows every fact
    assert all(len(d["candidates"]) == 4 for d in res.details)
    sets = [[p.format(f["subject"]) for f in forget for p in f["paraphrases"][-2:]]]
    missing = input_rephrasing(trained, tok, sets, ["Zzyzx"], samples=3)
    assert missing.success == [False] and missing.budget == len(sets[0]) * 3
    # seeded per fact: batching does not change the samples, the seed does
    model = edit_toy.llama(tok)
    prompt_sets = [[PROMPT, "The birthplace of Edda Farrow is"]] * 3
    a = input_rephrasing(model, tok, prompt_sets, ["Vessmark"] * 3, samples=3, seed=1)
    b = input_rephrasing(model, tok, prompt_sets, ["Vessmark"] * 3, samples=3, seed=1,
                         batch_size=1)
    c = input_rephrasing(model, tok, prompt_sets, ["Vessmark"] * 3, samples=3, seed=2)
    assert [d["candidates"] for d in a.details] == [d["candidates"] for d in b.details]
    assert [d["candidates"] for d in a.details] != [d["candidates"] for d in c.details]
    assert a.details[0]["candidates"] != a.details[1]["candidates"]  # per-fact streams


def test_head_projection_finds_the_answer_a_trained_model_knows(tok, facts, trained,
                                                                forgot_vessmark):
    forget = facts[0]
    params = AttackParams(layers=(3,), k=1, **BLOCK)
    assert run_attack("head_projection", trained, tok, forget, params).success == [True] * 3
    # with its unembedding row swapped out, 'Vessmark' leaves the final layer's top-1
    after = run_attack("head_projection", forgot_vessmark, tok, forget, params).success
    assert after == [False, True, True]
    with pytest.raises(LetheError, match="unknown attack 'head_projektion'"):
        run_attack("head_projektion", trained, tok, forget, params)


def test_white_box_attacks_look_past_a_lone_space_token():
    """Under a tokenizer that isolates whitespace (unlearn prepare's), the answer " Vessmark"
    starts with a space token every prompt predicts; the attacks must read the lens one position
    later and look for the first content token."""
    from eval.attacks.extraction import _first_tokens
    from lethe.lm import encode_prompt, leading_space_tokens
    from unlearn.prepare import train_tokenizer

    tok = train_tokenizer(edit_toy.sentences(), vocab_size=330)
    p_ids, a_ids = encode_pair(tok, PROMPT, "Vessmark")
    assert tok.decode([a_ids[0]]) == " " and leading_space_tokens(tok, a_ids) == 1
    (read,), (first,) = _first_tokens(tok, [PROMPT], ["Vessmark"])
    assert read == encode_prompt(tok, PROMPT + " ") == list(p_ids) + [a_ids[0]]
    assert first == a_ids[1] and tok.decode([first]).strip()
    # GPT-2-style BPE: " Vessmark" is one token, nothing is skipped
    gpt = edit_toy.tokenizer()
    assert leading_space_tokens(gpt, encode_pair(gpt, PROMPT, "Vessmark")[1]) == 0
