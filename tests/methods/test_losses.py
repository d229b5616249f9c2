"""Each method's loss against a value computed by hand from the tiny model's logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import fixture_seed
from unlearn.data import LMCollator
from unlearn.methods import get_method, method_names
from unlearn.methods.reference import make_reference, precompute_ref_logp


def seq_nll(model, part):
    """Per-sequence summed NLL and token count, written independently of unlearn.losses."""
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    sums, counts = [], []
    for i in range(part["input_ids"].shape[0]):
        n = int(part["attention_mask"][i].sum())
        ce = F.cross_entropy(logits[i, :n - 1].float(), part["input_ids"][i, 1:n],
                             reduction="sum")
        sums.append(ce)
        counts.append(n - 1)
    return torch.stack(sums), torch.tensor(counts, dtype=torch.float32)


def mean_nll(model, part):
    s, c = seq_nll(model, part)
    return (s.sum() / c.sum()).item()


def with_ref_logp(model, batch):
    """The batch with `ref_logp` cached from `model` (as the pipeline does before training)."""
    out = {}
    for side, part in batch.items():
        examples = [{"input_ids": part["input_ids"][i][part["attention_mask"][i] == 1].tolist()}
                    for i in range(part["input_ids"].shape[0])]
        cached = precompute_ref_logp(model, examples, LMCollator(0), batch_size=3)
        out[side] = {**part, "ref_logp": torch.tensor([e["ref_logp"] for e in cached])}
    return out


def loss_of(name, model, batch, ref=None, **cfg):
    method = get_method(name)
    return method.loss(model, batch, method.config_cls(**cfg), ref)


def test_all_methods_registered_with_documented_configs():
    names = set(method_names())
    assert {"ga", "grad_diff", "ga_klr", "npo", "npo_gdr", "npo_klr", "simnpo", "simnpo_forget",
            "rmu", "task_vector", "whp"} <= names
    assert get_method("task_vector").run is not None and get_method("whp").run is not None
    assert get_method("rmu").prepare is not None
    assert get_method("npo").needs_ref_logp and not get_method("npo").needs_ref_model
    assert get_method("npo_klr").needs_ref_logp and get_method("npo_klr").needs_ref_model
    assert get_method("simnpo").needs_ref_logp is False and get_method("simnpo").needs_retain
    assert get_method("simnpo_forget").needs_ref_logp is False


@torch.no_grad()
def test_precomputed_ref_logp_matches_unpadded_per_example(model, forget):
    cached = precompute_ref_logp(model, forget, LMCollator(0), batch_size=3)
    assert [c["input_ids"] for c in cached] == [f["input_ids"] for f in forget]
    assert all("ref_logp" not in f for f in forget)  # inputs untouched
    for ex, c in zip(forget, cached):
        ids = torch.tensor([ex["input_ids"]])
        part = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
        s, _ = seq_nll(model, part)
        assert c["ref_logp"] == pytest.approx(-s.item(), abs=1e-4)


@torch.no_grad()
def test_grad_diff_is_minus_forget_nll_plus_alpha_retain_nll(model, batch):
    a, b = mean_nll(model, batch["forget"]), mean_nll(model, batch["retain"])
    loss, logs = loss_of("grad_diff", model, batch, alpha=0.7)
    assert loss.item() == pytest.approx(-a + 0.7 * b, rel=1e-5)
    assert logs["forget_nll"] == pytest.approx(a, rel=1e-5)
    assert loss_of("ga", model, batch)[0].item() == pytest.approx(-a, rel=1e-5)


@torch.no_grad()
def test_npo_at_reference_equals_two_over_beta_log_two(model, batch):
    cached = with_ref_logp(model, batch)
    loss, logs = loss_of("npo", model, cached, beta=0.1)
    assert loss.item() == pytest.approx(2 / 0.1 * math.log(2), rel=1e-5)
    assert abs(logs["log_ratio"]) < 1e-4


@torch.no_grad()
def test_npo_matches_hand_formula_for_shifted_reference(model, batch):
    s, _ = seq_nll(model, batch["forget"])
    logp = (-s).tolist()
    ref = [lp + d for lp, d in zip(logp, (3.0, -2.0, 0.5, 10.0))]
    part = {**batch["forget"], "ref_logp": torch.tensor(ref)}
    beta = 0.5
    # −(2/β)·mean log σ(−β(logp − ref)), with log σ(z) = −log(1 + e^{−z})
    expected = -(2 / beta) * sum(-math.log1p(math.exp(beta * (lp - r)))
                                 for lp, r in zip(logp, ref)) / len(ref)
    loss, _ = loss_of("npo", model, {"forget": part}, beta=beta)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@torch.no_grad()
def test_npo_per_step_reference_equals_cached(model, batch):
    ref = make_reference(model, get_method("npo_klr"), lora_enabled=False)
    with torch.enable_grad():  # perturb θ so that θ ≠ ref
        for p in model.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    cached_from_ref = {"forget": {**batch["forget"],
                                  "ref_logp": ref.sequence_logprob(batch["forget"])}}
    per_step, _ = loss_of("npo", model, {"forget": batch["forget"]}, ref=ref)
    cached, _ = loss_of("npo", model, cached_from_ref)
    assert per_step.item() == pytest.approx(cached.item(), rel=1e-6)
    assert per_step.item() != pytest.approx(2 / 0.1 * math.log(2), rel=1e-3)


@torch.no_grad()
def test_simnpo_forget_matches_paper_formula(model, batch):
    s, c = seq_nll(model, batch["forget"])
    beta, gamma = 2.5, 0.3
    # eq. 4: −(2/β)·log σ(−(β/|y|)·log π(y) − γ), log π(y) = −NLL_sum
    terms = [math.log(1 / (1 + math.exp(-(-(beta / n) * (-nll) - gamma))))
             for nll, n in zip(s.tolist(), c.tolist())]
    expected = -(2 / beta) * sum(terms) / len(terms)
    loss, _ = loss_of("simnpo_forget", model, batch, beta=beta, gamma=gamma)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@torch.no_grad()
def test_simnpo_forget_at_zero_margin_point_is_two_over_beta_log_two():
    # When β·NLL/|y| = γ for every sequence, σ(0) = ½: loss = (2/β)·log 2 exactly.
    from unlearn.methods.simnpo_forget import SimNPOForgetConfig, simnpo_forget_loss

    class Fixed(torch.nn.Module):  # logits uniform over V: NLL per token = log V
        def forward(self, input_ids, attention_mask):
            return type("O", (), {"logits": torch.zeros(*input_ids.shape, 16)})()

    ids = torch.randint(0, 16, (3, 7))
    part = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    cfg = SimNPOForgetConfig(beta=2.0, gamma=2.0 * math.log(16))
    loss, _ = simnpo_forget_loss(Fixed(), {"forget": part}, cfg)
    assert loss.item() == pytest.approx(2 / 2.0 * math.log(2), rel=1e-6)


@torch.no_grad()
def test_kl_is_zero_at_reference_and_matches_categorical_kl(model, batch):
    ref = make_reference(model, get_method("ga_klr"), lora_enabled=False)
    a = mean_nll(model, batch["forget"])
    loss, logs = loss_of("ga_klr", model, batch, ref=ref, alpha=2.0)
    assert logs["retain_kl"] == pytest.approx(0.0, abs=1e-6)
    assert loss.item() == pytest.approx(-a, rel=1e-5)

    ref_logits = model(input_ids=batch["retain"]["input_ids"],
                       attention_mask=batch["retain"]["attention_mask"]).logits
    for p in model.parameters():
        p.add_(0.05 * torch.randn_like(p))
    part = batch["retain"]
    logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    kls = []
    for i in range(part["input_ids"].shape[0]):
        n = int(part["attention_mask"][i].sum())
        p_ref = torch.distributions.Categorical(logits=ref_logits[i, :n - 1])
        p_cur = torch.distributions.Categorical(logits=logits[i, :n - 1])
        kls.append(torch.distributions.kl_divergence(p_ref, p_cur))  # KL(p_ref ‖ p_θ)
    expected_kl = torch.cat(kls).mean().item()
    a, b = mean_nll(model, batch["forget"]), expected_kl
    loss, logs = loss_of("ga_klr", model, batch, ref=ref, alpha=2.0)
    assert logs["retain_kl"] == pytest.approx(b, rel=1e-4)
    assert loss.item() == pytest.approx(-a + 2.0 * b, rel=1e-4)
    # npo_klr and npo_gdr at θ = cached reference: (2/β)·log 2 + α·(KL | NLL)
    cached = with_ref_logp(model, batch)
    loss, _ = loss_of("npo_klr", model, cached, ref=ref, alpha=2.0)
    assert loss.item() == pytest.approx(20 * math.log(2) + 2.0 * b, rel=1e-4)
    loss, _ = loss_of("npo_gdr", model, cached, alpha=0.5)
    assert loss.item() == pytest.approx(20 * math.log(2) + 0.5 * mean_nll(model, part), rel=1e-5)


@torch.no_grad()
def test_lora_reference_is_base_with_adapters_disabled(model, batch):
    from lethe.trainer import LoraSection, apply_lora

    part = batch["retain"]
    base_logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    peft_model = apply_lora(model, LoraSection(r=4, alpha=8))
    ref = make_reference(peft_model, get_method("npo_klr"), lora_enabled=True)
    assert ref.held_bytes == 0
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.add_(0.5)  # adapters now change the output
    moved = peft_model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
    assert not torch.allclose(moved, base_logits, atol=1e-3)
    assert torch.allclose(ref.logits(part), base_logits, atol=1e-5)


@torch.no_grad()
def test_rmu_prepare_and_loss_by_hand(model, batch):
    from unlearn.methods.rmu import RMUConfig, resolve_layers

    assert resolve_layers(32, RMUConfig()) == (7, [5, 6, 7])  # the paper's Zephyr setting
    assert resolve_layers(4, RMUConfig()) == (1, [0, 1])
    cfg = RMUConfig(layer=0, steering_coeff=3.0, alpha=10.0, seed=5)
    method = get_method("rmu")
    method.prepare(model, cfg)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["model.layers.0.mlp.down_proj.weight"]
    ref = make_reference(model, method, lora_enabled=False)
    assert set(ref.snapshot) == {"model.layers.0.mlp.down_proj.weight"}

    def h0(part):  # output of layer 0 = hidden_states[1]
        return model(input_ids=part["input_ids"], attention_mask=part["attention_mask"],
                     output_hidden_states=True).hidden_states[1]

    g = torch.Generator().manual_seed(5)
    u = torch.rand(32, generator=g)
    target = 3.0 * u / u.norm()
    f, r = batch["forget"], batch["retain"]
    fm = f["attention_mask"].bool()
    expected_forget = ((h0(f) - target) ** 2).mean(-1)[fm].mean().item()
    loss, logs = method.loss(model, batch, cfg, ref)
    assert logs["forget_mse"] == pytest.approx(expected_forget, rel=1e-5)
    assert logs["retain_mse"] == pytest.approx(0.0, abs=1e-10)

    before = h0(r)
    model.model.layers[0].mlp.down_proj.weight.add_(0.1)
    rm = r["attention_mask"].bool()
    expected_retain = ((h0(r) - before) ** 2).mean(-1)[rm].mean().item()
    expected_forget = ((h0(f) - target) ** 2).mean(-1)[fm].mean().item()
    loss, logs = method.loss(model, batch, cfg, ref)
    assert logs["retain_mse"] == pytest.approx(expected_retain, rel=1e-4)
    assert loss.item() == pytest.approx(expected_forget + 10.0 * expected_retain, rel=1e-4)


def test_rmu_hooks_are_removed_and_bad_layers_refused(model, batch):
    from lethe.errors import LetheError
    from unlearn.methods.rmu import RMUConfig, rmu_prepare

    cfg = RMUConfig(layer=-1)
    rmu_prepare(model, cfg)
    ref = make_reference(model, get_method("rmu"), lora_enabled=False)
    get_method("rmu").loss(model, batch, cfg, ref)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(LetheError, match="out of range"):
        rmu_prepare(model, RMUConfig(layer=5))
    with pytest.raises(LetheError, match="above the steered layer"):
        rmu_prepare(model, RMUConfig(layer=0, update_layers=(1,)))


def test_whp_generic_logits_by_hand():
    from unlearn.methods.whp import generic_logits

    base = torch.tensor([1.0, 2.0, 3.0])
    reinforced = torch.tensor([2.0, 1.0, 5.0])
    # v_b − α·ReLU(v_r − v_b) with α = 2: [1 − 2·1, 2 − 0, 3 − 2·2]
    assert generic_logits(base, reinforced, 2.0).tolist() == [-1.0, 2.0, -1.0]


@torch.no_grad()
def test_whp_labels_mixture_and_generation_agree(forget):
    from transformers import LogitsProcessorList

    from tests.methods.conftest import tiny_llama
    from unlearn.methods.whp import WHPLogitsProcessor, WHPMixture, generic_labels

    base, reinforced = tiny_llama(seed=0), tiny_llama(seed=1)
    labelled = generic_labels(base, reinforced, forget[:3], pad_id=0, alpha=1.5, batch_size=2)
    mix = WHPMixture(base, reinforced, alpha=1.5)
    for ex in labelled:
        ids = torch.tensor([ex["input_ids"]])
        v_b, v_r = base(input_ids=ids).logits, reinforced(input_ids=ids).logits
        by_hand = (v_b - 1.5 * torch.relu(v_r - v_b)).argmax(-1)[0, :-1].tolist()
        assert ex["generic_labels"] == [-100] + by_hand
        assert mix(input_ids=ids).logits.argmax(-1)[0, :-1].tolist() == by_hand

    prompt = torch.tensor([forget[0]["input_ids"][:5]])
    out = base.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=4,
                        do_sample=False, pad_token_id=0,
                        logits_processor=LogitsProcessorList([WHPLogitsProcessor(reinforced, 1.5)]))
    seq = prompt
    for _ in range(4):  # greedy decoding on the mixed logits, by hand
        nxt = mix(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    assert out.tolist() == seq.tolist()

    # a left-padded row gets the same generic scores as the prompt alone (pads masked out);
    # without the pad id the reinforced model would read the pads as text
    short = forget[1]["input_ids"][:3]
    padded = torch.tensor([forget[0]["input_ids"][:5], [0, 0] + short])
    scores = torch.zeros(2, 128)
    alone = WHPLogitsProcessor(reinforced, 1.0, pad_token_id=0)(torch.tensor([short]), scores[:1])
    masked = WHPLogitsProcessor(reinforced, 1.0, pad_token_id=0)(padded, scores)
    unmasked = WHPLogitsProcessor(reinforced, 1.0)(padded, scores)
    assert torch.allclose(masked[1], alone[0], atol=1e-5)
    assert not torch.allclose(unmasked[1], alone[0], atol=1e-2)


@torch.no_grad()
def test_task_vector_negation_by_hand():
    from unlearn.methods.task_vector import negate_task_vector

    target, tuned = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    target.weight.copy_(torch.tensor([[1.0, -1.0]]))
    tuned.weight.copy_(torch.tensor([[1.5, -3.0]]))
    target.bias.fill_(0.0)
    tuned.bias.fill_(0.25)
    negate_task_vector(target, tuned, alpha=2.0)
    # θ − α(θ_ft − θ): 1 − 2·0.5 = 0; −1 − 2·(−2) = 3; 0 − 2·0.25 = −0.5
    assert target.weight.tolist() == [[0.0, 3.0]]
    assert target.bias.tolist() == [-0.5]


@torch.no_grad()
def test_whp_mixture_saves_loads_and_generates_through_the_adapter(forget, tokenizer, tmp_path):
    """MUSE's WHP (swj0419/muse_bench baselines/baselines/whos_harry_potter.py): logits
    v_b − α·ReLU(v_r − v_b) from both models at every step; saved as a mixture directory that
    lethe.loading loads, scored and decoded (left-padded, batched) by lethe.lm.LM."""
    from lethe.lm import LM
    from lethe.loading import load_model, model_identity
    from lethe.mixture import LogitMixture
    from tests.methods.conftest import tiny_llama

    base, reinforced = tiny_llama(seed=0), tiny_llama(seed=1)
    LogitMixture(base, reinforced, alpha=1.5).save_pretrained(tmp_path / "mix")
    tokenizer.save_pretrained(tmp_path / "mix")
    loaded = load_model(str(tmp_path / "mix"))
    assert isinstance(loaded, LogitMixture) and loaded.alpha == 1.5
    assert model_identity(str(tmp_path / "mix"))["mixture"]["alpha"] == 1.5
    ids = torch.tensor([forget[0]["input_ids"]])
    v_b, v_r = base(input_ids=ids).logits, reinforced(input_ids=ids).logits
    want = v_b - 1.5 * torch.relu(v_r - v_b)
    assert torch.allclose(loaded(input_ids=ids).logits, want, atol=1e-5)
    lm = LM(loaded, tokenizer, progress=False)
    prompts = [forget[0]["input_ids"][:6], forget[1]["input_ids"][:3]]  # left padding
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # nothing deprecated on the way
        warnings.simplefilter("always")
        texts = lm.generate_ids(prompts, max_new_tokens=4, batch_size=2)
    assert not [w for w in caught if "past_key_values" in str(w.message)]
    for prompt, text in zip(prompts, texts):
        seq = torch.tensor([prompt])
        for _ in range(4):  # greedy on the mixed logits, one prompt at a time, by hand
            nxt = loaded(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        assert text == tokenizer.decode(seq[0, len(prompt):].tolist(), skip_special_tokens=True)


def test_whp_processor_reads_only_new_tokens_and_mixes_as_a_full_reread():
    """The reinforced model's KV cache inside one generation: each step after the first reads
    only the tokens added since, and the mixed scores equal a full re-read of the left-padded
    sequence; a sequence that does not continue the last one starts over."""
    from lethe.mixture import MixtureLogitsProcessor
    from tests.methods.conftest import tiny_llama

    reinforced = tiny_llama(seed=1)
    g = torch.Generator().manual_seed(fixture_seed(3))
    prompt = torch.randint(3, 60, (2, 7), generator=g)  # (B, T0)
    prompt_mask = torch.ones_like(prompt)
    prompt[1, :3], prompt_mask[1, :3] = 0, 0  # the second row left-padded by 3
    cached = MixtureLogitsProcessor(reinforced, alpha=1.5, prompt_mask=prompt_mask)
    lengths = []
    forward = reinforced.forward

    def counting(*args, **kwargs):
        lengths.append(kwargs["input_ids"].shape[1])
        return forward(*args, **kwargs)

    reinforced.forward = counting
    seq = prompt
    for step in range(4):
        scores = torch.randn(2, reinforced.config.vocab_size, generator=g)  # (B, V)
        got = cached(seq, scores)
        fresh = MixtureLogitsProcessor(reinforced, alpha=1.5, prompt_mask=prompt_mask)
        assert torch.allclose(got, fresh(seq, scores), atol=1e-4), step
        seq = torch.cat([seq, got.argmax(-1, keepdim=True)], dim=1)
    # cached calls: 7 prompt tokens, then one new token per step; each fresh one re-read all
    assert lengths[0::2] == [7, 1, 1, 1] and lengths[1::2] == [7, 8, 9, 10]
    other = seq.clone()
    other[:, 8] = 3 + (other[:, 8] - 2) % 57  # a token the cached model read is different
    cached(other, torch.zeros(2, reinforced.config.vocab_size))
    assert lengths[-1] == other.shape[1] == 11  # not a continuation: read from the start


def test_reference_logp_cache_is_reused_and_keyed_by_model_and_data(model, forget, tmp_path,
                                                                     monkeypatch):
    """`cached_ref_logp` computes once per (starting weights, token ids) and reads the values
    back later (the pipeline's comparison variants and seeds share them); another model id or
    other examples compute afresh."""
    from unlearn.methods import reference

    monkeypatch.setenv("LETHE_CACHE", str(tmp_path))
    calls = []
    real = reference.precompute_ref_logp
    monkeypatch.setattr(reference, "precompute_ref_logp",
                        lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    first = reference.cached_ref_logp(model, forget, model_id="m1", batch_size=3,
                                      pad_token_id=0)
    again = reference.cached_ref_logp(model, forget, model_id="m1", batch_size=3,
                                      pad_token_id=0)
    assert calls == [len(forget)] and again == first  # read back, not recomputed
    assert [e["ref_logp"] for e in first] == [e["ref_logp"] for e in real(
        model, forget, LMCollator(0), batch_size=3)]
    reference.cached_ref_logp(model, forget, model_id="m2", batch_size=3, pad_token_id=0)
    reference.cached_ref_logp(model, forget[1:], model_id="m1", batch_size=3, pad_token_id=0)
    reference.cached_ref_logp(model, forget, model_id=None, batch_size=3, pad_token_id=0)
    assert calls == [len(forget), len(forget), len(forget) - 1, len(forget)]
    assert len(list((tmp_path / "ref_logp").glob("*.json"))) == 3
