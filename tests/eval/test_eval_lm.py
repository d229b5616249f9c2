"""The model adapter: batched scoring and generation equal one-at-a-time computation."""

import numpy as np
import pytest
import torch

from lethe.lm import LM

TEXTS = ["Alina Varga was born in Lisbon in 1961.",
         "Every morning",
         "As a young adult Boris trained as a cartographer and later opened a small workshop "
         "near the harbour.",
         "A dog called Rex.",
         "Question: Where was Celia born?\nAnswer: Porto"]


def test_token_logprobs_match_a_plain_forward(random_model, tokenizer):
    lm = LM(random_model, tokenizer, progress=False)
    text = TEXTS[2]
    ids = torch.tensor([tokenizer(text)["input_ids"]])  # BOS + text
    with torch.no_grad():
        logp = torch.log_softmax(random_model(ids).logits[0, :-1].float(), -1)  # (T-1, V)
    expected = logp.gather(-1, ids[0, 1:, None]).squeeze(-1).numpy()
    got = lm.token_logprobs([text])[0]
    assert got.shape == (ids.shape[1] - 1,)  # every token but the first (BOS) is scored
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("batch_size", [2, 8])
def test_batched_scores_equal_one_at_a_time(target_model, tokenizer, batch_size):
    lm = LM(target_model, tokenizer, progress=False)
    single = [lm.token_scores([t], 1)[0] for t in TEXTS]
    batched = lm.token_scores(TEXTS, batch_size)
    for s, b in zip(single, batched):  # same order as given, despite sorting by length
        assert s.logprobs.shape == b.logprobs.shape
        np.testing.assert_allclose(b.logprobs, s.logprobs, atol=1e-5)
        np.testing.assert_allclose(b.mean, s.mean, atol=1e-5)
        np.testing.assert_allclose(b.std, s.std, atol=1e-5)


@pytest.mark.parametrize("model_name", ["random_model", "target_model"])
def test_batched_greedy_generation_equals_one_at_a_time(request, tokenizer, model_name):
    model = request.getfixturevalue(model_name)
    lm = LM(model, tokenizer, progress=False)
    prompts = [t[: 8 + 7 * i] for i, t in enumerate(TEXTS)]  # different lengths -> padding
    single = [lm.generate([p], 20, batch_size=1)[0] for p in prompts]
    assert lm.generate(prompts, 20, batch_size=len(prompts)) == single
    assert lm.generate(prompts, 20, batch_size=2) == single
    # and both equal HF generate on the unpadded prompt
    ids = tokenizer(prompts[0], return_tensors="pt")
    ref = model.generate(**ids, max_new_tokens=20, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)[0, ids.input_ids.shape[1]:]
    ref = ref.tolist()
    if tokenizer.eos_token_id in ref:
        ref = ref[:ref.index(tokenizer.eos_token_id)]
    assert single[0] == tokenizer.decode(ref, skip_special_tokens=True)


def test_generation_length_and_training_flag(target_model, tokenizer):
    lm = LM(target_model, tokenizer, progress=False)
    target_model.train()
    try:
        out = lm.generate(["Alina Varga was born in"], 5, batch_size=1)[0]
        assert target_model.training  # the caller's mode is restored
    finally:
        target_model.eval()
    assert 0 < len(tokenizer(out, add_special_tokens=False)["input_ids"]) <= 6


def test_memorised_model_continues_its_training_text(target_model, tokenizer, world):
    doc = world["raw"]["forget"][0]["text"]
    words = doc.split()
    out = LM(target_model, tokenizer, progress=False).generate([" ".join(words[:12])], 12)[0]
    assert out.split()[:3] == words[12:15]


def test_stop_strings_and_shared_prefix_change_nothing_but_speed(target_model, tokenizer,
                                                                 world):
    from eval.muse.knowmem import ANSWER_STOPS, cut_answer, icl_prefix, qa_prompt

    shots = world["knowmem"]["forget_qa_icl"]
    prefix = icl_prefix([s["question"] for s in shots], [s["answer"] for s in shots])
    prompts = [qa_prompt(prefix, r["question"]) for r in world["knowmem"]["forget_qa"]]
    fast = LM(target_model, tokenizer, progress=False)
    plain = LM(target_model, tokenizer, progress=False, prefix_cache=False)
    assert fast._shared_prefix(fast.encode(prompts))[0] > 100  # the ICL block is shared
    reference = [plain.generate([p], 32, batch_size=1)[0] for p in prompts]
    stopped = fast.generate(prompts, 32, batch_size=4, stop=ANSWER_STOPS)
    assert any("\n\n" in r for r in reference)  # the model does emit the cut string
    assert [cut_answer(s) for s in stopped] == [cut_answer(r) for r in reference]
    assert sum(map(len, stopped)) < sum(map(len, reference))  # and stopping saved tokens
    assert plain.generate(prompts, 32, batch_size=4) == reference  # batched, no prefix cache


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(random_model, tokenizer):
    lm = LM(random_model, tokenizer, progress=False)
    prompts = ["Alina Varga was born in", "Every morning"]
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = lm.generate(prompts, 12, greedy=False, temperature=1.5, seed=7)
    after = torch.rand(1)
    assert torch.equal(before, after)  # the caller's RNG stream is untouched
    assert lm.generate(prompts, 12, greedy=False, temperature=1.5, seed=7) == a
    assert lm.generate(prompts, 12, greedy=False, temperature=1.5, seed=8) != a
