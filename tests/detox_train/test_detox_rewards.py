"""Reward callables and the prompt filter against hand-computed values."""

import pytest

from detox.train.rewards import (CombinedReward, LengthScorer, PartReward, combine,
                           completion_texts, inappropriate_rows, length_ratio, normalised,
                           reward_functions)
from lethe.errors import LetheError


class Table:
    """A toy scorer: a fixed value per text (sources are recorded)."""

    def __init__(self, values):
        self.values, self.seen_sources = values, []

    def score(self, texts, sources=None):
        self.seen_sources.append(sources)
        return [self.values[t] for t in texts]


def test_length_ratio_is_min_over_max_word_count():
    assert length_ratio("a b c", "a b c d e f") == pytest.approx(0.5)
    assert length_ratio("a b c d e f", "a b c") == pytest.approx(0.5)
    assert length_ratio("x y", "a b") == 1.0
    assert length_ratio("", "a") == 0.0
    assert LengthScorer().score(["a", "a b c d"], ["a b", "a b"]) == [0.5, 0.5]


def test_weighted_arithmetic_and_harmonic_means():
    parts = {"appropriateness": [0.2, 1.0], "similarity": [0.8, 0.5]}
    # 0.4*0.2 + 0.6*0.8 = 0.56 ; 0.4*1.0 + 0.6*0.5 = 0.70 (weights 2:3 normalise to .4/.6)
    assert combine(parts, {"appropriateness": 2, "similarity": 3}) == pytest.approx([.56, .70])
    # 1 / (0.4/0.2 + 0.6/0.8) = 1/2.75 ; 1 / (0.4/1.0 + 0.6/0.5) = 1/1.6
    assert combine(parts, {"appropriateness": .4, "similarity": .6}, "harmonic") == \
        pytest.approx([1 / 2.75, 1 / 1.6])
    # a zero part is floored at eps = 1e-3: 1 / (0.5/0.001 + 0.5/1.0)
    assert combine({"a": [0.0], "b": [1.0]}, {"a": 1, "b": 1}, "harmonic") == \
        pytest.approx([1 / 500.5])
    # weight 0 drops a part entirely (even one without values for these texts)
    assert combine({"a": [0.3], "b": []}, {"a": 1.0, "b": 0.0}) == pytest.approx([0.3])
    assert normalised({"a": 1, "b": 0, "c": 3}) == {"a": 0.25, "c": 0.75}
    with pytest.raises(LetheError):
        normalised({"a": 0})


def test_part_reward_reads_conversational_completions_and_passes_sources():
    sim = Table({"fine words": 0.9, "rude": 0.1})
    r = PartReward("similarity", sim, needs_source=True)
    completions = [[{"role": "assistant", "content": "fine words"}],
                   [{"role": "assistant", "content": "rude"}]]
    assert r(prompts=["p", "p"], completions=completions, source=["s1", "s2"]) == [0.9, 0.1]
    assert sim.seen_sources == [["s1", "s2"]]
    assert r.__name__ == "similarity"
    with pytest.raises(LetheError, match="no 'source' column"):
        r(prompts=["p"], completions=["fine words"])
    app = Table({"fine words": 0.8})
    assert PartReward("appropriateness", app)(completions=["fine words"], source=["x"]) == [0.8]
    assert app.seen_sources == [None]  # a classifier part never sees the original
    assert completion_texts(["plain", [{"role": "assistant", "content": "chat"}]]) == \
        ["plain", "chat"]
    # with detox rewrite's cleaning (first line), the scorer sees what rewrite would output
    first = PartReward("appropriateness", app, clean=lambda t: t.splitlines()[0])
    assert first(completions=["fine words\nrude"]) == [0.8]


def test_reward_functions_arithmetic_gives_one_callable_per_part_with_weights():
    scorers = {"appropriateness": Table({"t": 0.2}), "similarity": Table({"t": 0.8}),
               "fluency": Table({"t": 1.0})}
    funcs, weights = reward_functions(scorers, {"appropriateness": 0.4, "similarity": 0.6,
                                                "fluency": 0.0, "length": 0.0})
    assert [f.__name__ for f in funcs] == ["appropriateness", "similarity"]
    assert weights == pytest.approx([0.4, 0.6])
    # what TRL computes: sum_i w_i * f_i = the weighted arithmetic mean
    total = sum(w * f(completions=["t"], source=["t"])[0] for f, w in zip(funcs, weights))
    assert total == pytest.approx(0.4 * 0.2 + 0.6 * 0.8)


def test_harmonic_reward_is_one_callable_that_logs_its_parts():
    scorers = {"appropriateness": Table({"a": 0.2, "b": 1.0}),
               "similarity": Table({"a": 0.8, "b": 0.5})}
    funcs, weights = reward_functions(scorers, {"appropriateness": 0.4, "similarity": 0.6},
                                      "harmonic")
    assert weights is None and len(funcs) == 1 and isinstance(funcs[0], CombinedReward)
    logged = {}
    out = funcs[0](completions=["a", "b"], source=["x", "y"],
                   log_metric=lambda k, v: logged.__setitem__(k, v))
    assert out == pytest.approx([1 / 2.75, 1 / 1.6])
    assert logged == pytest.approx({"reward_parts/appropriateness": 0.6,
                                    "reward_parts/similarity": 0.65})


def test_rewards_wrap_eval_detox_scorers_exactly():
    from eval.detox.similarity import EmbeddingSimilarity

    sim = EmbeddingSimilarity("hashing:4096")
    emb = sim.embedder
    assert len({emb.bucket(w) for w in ("alpha", "beta", "gamma")}) == 3  # no collision
    r = PartReward("similarity", sim, needs_source=True)
    # bags {alpha, beta} vs {alpha, gamma}: cosine = 1 / (sqrt 2 * sqrt 2) = 0.5
    assert r(completions=["alpha beta", "alpha beta"], source=["alpha gamma", "beta alpha"]) \
        == pytest.approx([0.5, 1.0])


def test_filter_keeps_rows_scored_inappropriate():
    # P(inappropriate) = 1 - P(appropriate) = .1 .7 .5 .51 -> rows 1, 2 (boundary kept), 3
    assert inappropriate_rows([0.9, 0.3, 0.5, 0.49], 0.5) == [1, 2, 3]
    assert inappropriate_rows([0.9, 0.3], 0.8) == []


def test_select_prompts_filters_shuffles_and_stops_at_the_limit():
    from detox.train.rl import select_prompts

    texts = [f"text {i} idiot" if i % 3 == 0 else f"text {i}" for i in range(30)]
    calls = []

    def p_app(batch):
        calls.append(len(batch))
        return [0.1 if "idiot" in t else 0.9 for t in batch]

    kept, info = select_prompts(texts, 4, p_app, 0.5, seed=0, chunk=8)
    assert len(kept) == 4 and all("idiot" in t for t in kept)
    assert set(kept) <= {t for t in texts if "idiot" in t}
    assert sum(calls) == info["scored"] < 30  # stopped before classifying everything
    again, _ = select_prompts(texts, 4, p_app, 0.5, seed=0, chunk=8)
    assert again == kept  # seeded
    allkept, info = select_prompts(texts, None, p_app, 0.5, seed=1)
    assert sorted(allkept) == sorted(t for t in texts if "idiot" in t) and info["kept"] == 10
