"""The shared trainer: pluggable loss, logs, divergence guard, resume, LoRA, DeepSpeed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lethe.errors import Diverged
from lethe.trainer import (DivergenceGuard, LetheTrainer, LoraSection, apply_lora,
                           resume_checkpoint, training_arguments)
from unlearn.data import LMCollator, TextDataset
from unlearn.methods.losses import nll
from tests.helpers import fixture_seed

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(seed=0):
    torch.manual_seed(fixture_seed(seed))
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


def dataset(n=16, length=12, seed=0):
    g = torch.Generator().manual_seed(fixture_seed(seed))
    return TextDataset([{"input_ids": torch.randint(3, 64, (length,), generator=g).tolist()}
                        for _ in range(n)])


def make_trainer(tmp_path, model, loss_fn, **train):
    args = training_arguments({"learning_rate": 1e-2, "max_steps": 6,
                               "per_device_train_batch_size": 4, **train}, tmp_path / "out")
    return LetheTrainer(model=model, args=args, train_dataset=dataset(),
                        data_collator=LMCollator(0), loss_fn=loss_fn,
                        guard=DivergenceGuard(train.pop("max_abs", None)))


def test_loss_fn_drives_training_and_logs_parts(tmp_path):
    model = tiny_model()
    before = nll(model, LMCollator(0)(dataset().examples))
    trainer = make_trainer(tmp_path, model, lambda m, b: (nll(m, b), {"part": 0.5}))
    trainer.train()
    after = nll(model, LMCollator(0)(dataset().examples))
    assert after < before - 0.1  # it really trained on the pluggable loss
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 6 and all(r["part"] == 0.5 for r in steps)


def test_divergence_guard_stops_before_bad_update_and_keeps_checkpoint(tmp_path):
    calls = {"n": 0}

    def exploding(m, b):
        calls["n"] += 1
        loss = nll(m, b)
        return (loss * float("nan") if calls["n"] >= 4 else loss), {}

    model = tiny_model()
    trainer = make_trainer(tmp_path, model, exploding, save_strategy="steps", save_steps=2)
    with pytest.raises(Diverged) as err:
        trainer.train()
    msg = str(err.value)
    assert "diverged at step 4" in msg and "not finite" in msg
    assert "checkpoint-2" in msg and (tmp_path / "out" / "checkpoint-2").is_dir()
    assert not (tmp_path / "out" / "checkpoint-4").exists()


def test_threshold_guard(tmp_path):
    trainer = make_trainer(tmp_path, tiny_model(), lambda m, b: (-100 * nll(m, b), {}))
    trainer.guard = DivergenceGuard(max_abs_loss=50.0)
    with pytest.raises(Diverged, match="exceeds the limit 50"):
        trainer.train()


def test_resume_from_checkpoint(tmp_path):
    t1 = make_trainer(tmp_path, tiny_model(), lambda m, b: (nll(m, b), {}), save_strategy="steps",
                      save_steps=3, max_steps=3)
    t1.train()
    last = resume_checkpoint(tmp_path / "out", True)
    assert last and last.endswith("checkpoint-3")
    t2 = make_trainer(tmp_path, tiny_model(seed=1), lambda m, b: (nll(m, b), {}), max_steps=6)
    t2.train(resume_from_checkpoint=last)
    assert t2.state.global_step == 6
    logged = [r["step"] for r in map(json.loads, (tmp_path / "out" / "metrics.jsonl").open())
              if "loss" in r]
    assert logged == [1, 2, 3, 4, 5, 6]  # the second run continued at step 4


def test_lora_trains_only_adapters(tmp_path):
    model = apply_lora(tiny_model(), LoraSection(r=4, target_modules=("q_proj", "v_proj")))
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    lora = {n: p.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    make_trainer(tmp_path, model, lambda m, b: (nll(m, b), {}), max_steps=3).train()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in frozen.items())
    assert any(not torch.equal(params[n], p) for n, p in lora.items())


def test_lora_unknown_module_is_one_line():
    from lethe.errors import LetheError

    with pytest.raises(LetheError, match="lora.target_modules: qq_proj not found"):
        apply_lora(tiny_model(), LoraSection(target_modules=("qq_proj",)))


@pytest.mark.slow
@pytest.mark.deepspeed
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_prepare_runs_through_deepspeed(tmp_path, stage):
    """`unlearn prepare` on the tiny world under DeepSpeed ZeRO on the CPU backend.

    Run as a bare console script: the trainer sets up a one-process world for DeepSpeed.
    The loss must match the plain run's (same seed, same data, ZeRO only shards state).
    """
    pytest.importorskip("deepspeed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    losses = {}
    for name, extra in (("plain", []), (stage, ["--set", f"prepare.train.deepspeed="
                                                  f"{ROOT}/recipes/deepspeed/{stage}.json"])):
        out = tmp_path / name
        cmd = [sys.executable, "-m", "unlearn", "prepare", str(ROOT / "recipes/tiny.yaml"),
               "--set", f"world.dir={tmp_path}/world", "--set", f"prepare.out_dir={out}",
               "--set", "prepare.train.max_steps=4", "--set", "prepare.train.logging_steps=1", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout[proc.stdout.index("{"):])
        losses[name] = summary["models"]["target"]["final_loss"]
        from lethe.loading import load_model

        model = load_model(str(out / "target"))  # full, gathered weights (not ZeRO-3 shards)
        assert model.model.embed_tokens.weight.shape[0] == model.config.vocab_size
    assert losses[stage] == pytest.approx(losses["plain"], rel=1e-3)


def test_batch_tokens_counts_real_tokens_of_flat_packed_and_paired_batches():
    """`tokens_seen` (tokens/s in the trainer's logs) adds `batch_tokens` of every training
    batch: mask ones when there is a mask, labelled positions of packed rows, both parts of
    a forget/retain pair; padding never counts."""
    from lethe.trainer import batch_tokens

    ids = torch.arange(8).view(2, 4)  # (B, T)
    padded = {"input_ids": ids, "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])}
    packed = {"input_ids": ids, "labels": torch.tensor([[-100, 1, 2, 3], [4, 5, 6, 7]])}
    assert batch_tokens(padded) == 5
    assert batch_tokens(packed) == 7
    assert batch_tokens({"input_ids": ids}) == 8
    assert batch_tokens({"forget": padded, "retain": packed}) == 12
    assert batch_tokens([1, 2]) == 0


def test_paired_order_sampler_shuffles_each_epoch_and_keeps_the_shared_order():
    from lethe.trainer import PairedOrderSampler

    def epoch_order(n_total, epoch, seed=fixture_seed(0)):
        sampler = PairedOrderSampler(12, n_total, seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    for n_total in (12, 16, 18):
        for epoch in (0, 1):
            assert sorted(epoch_order(n_total, epoch)) == list(range(n_total))  # a permutation
    a, b = epoch_order(16, 0), epoch_order(18, 0)
    shared_a, shared_b = [i for i in a if i < 12], [i for i in b if i < 12]
    assert shared_a == shared_b  # the same shared order whatever follows the shared part
    # ... and every shared example at nearly the same place (at most the 2 extra own ones)
    assert all(abs(a.index(i) - b.index(i)) <= 2 for i in range(12))
    assert [i for i in epoch_order(16, 1) if i < 12] != shared_a  # a new shuffle per epoch
    assert epoch_order(16, 1) == epoch_order(16, 1)  # set_epoch replays an epoch exactly
    other_seed = [i for i in epoch_order(16, 0, seed=fixture_seed(0) + 1) if i < 12]
    assert other_seed != shared_a


@pytest.mark.parametrize("paired", [True, False])
def test_two_trainings_with_a_shared_prefix_meet_it_in_the_same_order(tmp_path, paired):
    """Through the whole Trainer (accelerate's dataloader included): two runs over 12 shared
    examples plus 4 or 6 of their own see the shared ones in the same order in every epoch;
    with a plain shuffle (the control) they do not."""
    shared = [{"input_ids": [3 + i, 3 + i]} for i in range(12)]

    def seen_order(own: int, steps: int) -> list[list[int]]:
        data = TextDataset(shared + [{"input_ids": [40 + j, 40 + j]} for j in range(own)])
        seen: list[int] = []

        def loss_fn(model, batch):
            seen.extend(batch["input_ids"][:, 0].tolist())
            return nll(model, batch), {}

        args = training_arguments({"learning_rate": 1e-3, "max_steps": steps,
                                   "per_device_train_batch_size": 4, "seed": fixture_seed(0)},
                                  tmp_path / f"out{own}")
        LetheTrainer(model=tiny_model(), args=args, train_dataset=data,
                     data_collator=LMCollator(0), loss_fn=loss_fn,
                     shared_prefix=12 if paired else None).train()
        n = len(data)
        return [[i - 3 for i in seen[e * n:(e + 1) * n] if i < 40] for e in range(2)]

    a, b = seen_order(4, 8), seen_order(6, 10)  # two epochs each (16/4 and 18/4 batches)
    assert all(sorted(epoch) == list(range(12)) for epoch in a + b)
    if paired:
        assert a == b and a[0] != a[1]
    else:
        assert a[0] != b[0] and a[1] != b[1]
