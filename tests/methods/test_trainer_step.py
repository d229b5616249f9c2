"""One LetheTrainer step with each method's loss changes the trainable parameters and raises the
forget-set NLL; the multi-stage methods (task_vector, whp) run end to end with a trainer-backed
train_fn and also raise it."""

from __future__ import annotations

import pytest
import torch

from lethe.trainer import LetheTrainer, LoraSection, apply_lora, training_arguments
from unlearn.data import LMCollator, PairedCollator, PairedDataset
from unlearn.methods import get_method
from unlearn.methods.losses import nll
from unlearn.methods.reference import make_reference, precompute_ref_logp
from unlearn.pipeline import method_loss_fn

TRAIN = {"per_device_train_batch_size": 4, "lr_scheduler_type": "constant", "use_cpu": True,
         "weight_decay": 0.0, "seed": 0, "save_strategy": "no"}


@torch.no_grad()
def forget_nll(model, examples):
    was = model.training
    model.eval()
    value = nll(model, LMCollator(0)([{"input_ids": e["input_ids"]} for e in examples])).item()
    model.train(was)
    return value


def train_fn_factory(max_steps: int, lr: float, return_trainer: bool = False):
    """What the pipeline passes to `run`: train `model` with `loss_fn` via LetheTrainer
    (returning the model, or the Trainer as unlearn/pipeline.py's train_fn does)."""

    def train_fn(model, dataset, collator, loss_fn, output_dir):
        args = training_arguments({**TRAIN, "learning_rate": lr, "max_steps": max_steps},
                                  output_dir)
        trainer = LetheTrainer(model=model, args=args, train_dataset=dataset,
                               data_collator=collator, loss_fn=loss_fn)
        trainer.train()
        return trainer if return_trainer else model

    return train_fn


# (method, config overrides, learning rate, lora)
CASES = [
    ("ga", {}, 1e-2, False),
    ("grad_diff", {}, 1e-2, False),
    ("ga_klr", {}, 1e-2, False),
    ("npo", {}, 1e-2, False),
    ("npo_gdr", {}, 1e-2, False),
    ("npo_klr", {}, 1e-2, False),
    ("npo_klr", {}, 5e-2, True),  # reference = adapters disabled
    ("simnpo", {}, 1e-2, False),
    ("simnpo_forget", {}, 1e-2, False),
    ("npo_klr", {"reference_impl": "muse_code"}, 1e-2, False),  # MUSE's raw-logit arithmetic
    # all parameters of the steered layer: a single step of only down_proj barely moves NLL
    ("rmu", {"layer": 0, "params": ()}, 1e-2, False),
    ("dpo", {}, 1e-2, False),
    ("idk_dpo", {}, 1e-2, False),
    ("altpo", {}, 1e-2, False),
    ("undial", {}, 1e-2, False),
    ("wga", {}, 1e-2, False),
    ("satimp", {}, 1e-2, False),
    ("ce_u", {}, 1e-2, False),
    ("pdu", {}, 1e-2, False),
]


@pytest.mark.parametrize("name,overrides,lr,lora", CASES,
                         ids=[f"{c[0]}{'-lora' if c[3] else ''}"
                              f"{'-' + c[1]['reference_impl'] if 'reference_impl' in c[1] else ''}"
                              for c in CASES])
def test_one_trainer_step_unlearns(name, overrides, lr, lora, model, forget, retain, tmp_path):
    method = get_method(name)
    cfg = method.config_cls(**overrides)
    model.train()
    if lora:
        model = apply_lora(model, LoraSection(r=4, alpha=8))
    if method.prepare is not None:
        model = method.prepare(model, cfg)
    ref = make_reference(model, method, lora_enabled=lora, cfg=cfg)
    # preference methods: a fixed alternate answer per forget example (as unlearn.alternates)
    alternate = [{"input_ids": [1, 7, 8, 9, 2]} for _ in forget] \
        if method.needs_alternate else None
    if method.needs_ref_logp:
        forget = precompute_ref_logp(model, forget, LMCollator(0), batch_size=4)
        retain = precompute_ref_logp(model, retain, None, batch_size=4, pad_token_id=0)
        if alternate:
            alternate = precompute_ref_logp(model, alternate, None, batch_size=4, pad_token_id=0)

    before_nll = forget_nll(model, forget[:4])  # the examples the step trains on
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable

    args = training_arguments({**TRAIN, "learning_rate": lr, "max_steps": 1}, tmp_path)
    trainer = LetheTrainer(model=model, args=args,
                           train_dataset=PairedDataset(forget[:4], retain[:4],
                                                       alternate=alternate and alternate[:4]),
                           data_collator=PairedCollator(0),
                           loss_fn=method_loss_fn(method, cfg, ref))
    trainer.train()

    after = dict(model.named_parameters())
    changed = [n for n, old in trainable.items() if not torch.equal(after[n].detach(), old)]
    assert changed, "no trainable parameter moved"
    assert all(torch.equal(after[n].detach(), old) for n, old in frozen.items())
    assert forget_nll(model, forget[:4]) > before_nll
    assert (tmp_path / "metrics.jsonl").is_file()


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_task_vector_run_raises_forget_nll(lora, model, forget, retain, tokenizer, tmp_path):
    method = get_method("task_vector")
    before = forget_nll(model, forget)
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    reinforced = {}
    train = train_fn_factory(8, 1e-2 if lora else 1e-3)

    def train_fn(m, dataset, collator, loss_fn, output_dir):  # records what it reinforced
        out = train(m, dataset, collator, loss_fn, output_dir)
        reinforced["nll"] = forget_nll(out, forget)
        return out

    out = method.run(model=model, tokenizer=tokenizer, forget=forget, retain=retain,
                     cfg=method.config_cls(alpha=1.0), train_fn=train_fn, output_dir=tmp_path,
                     lora=LoraSection(r=4, alpha=8) if lora else None)
    assert out is model  # edited in place, plain (no adapters)
    changed = {n for n, p in out.named_parameters() if not torch.equal(p, snapshot[n])}
    assert changed
    if lora:  # a LoRA task vector touches only the adapted projections
        assert all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)
    # The premise: fine-tuning on the forget set lowered its NLL (LoRA at lr 5e-2 overshot and
    # raised it in one fixture seed, and the negated vector then lowered it; full fine-tuning
    # overshoots at 1e-2). Negating the
    # change raises the NLL by about as much to first order; measured over fixture seeds 0-3:
    # reinforced -0.02 to -0.03, negated +0.05 to +0.11 (LoRA), so half the drop is a wide margin.
    drop = before - reinforced["nll"]
    assert drop > 0
    assert forget_nll(out, forget) > before + drop / 2
    assert (tmp_path / "reinforced" / "metrics.jsonl").is_file()


@pytest.mark.parametrize("mode", ["mixture", "finetune"])
def test_whp_run_raises_forget_nll(mode, model, forget, retain, tokenizer, tmp_path):
    from lethe.mixture import LogitMixture

    method = get_method("whp")
    before = forget_nll(model, forget)
    out = method.run(model=model, tokenizer=tokenizer, forget=forget, retain=retain,
                     cfg=method.config_cls(alpha=10.0 if mode == "mixture" else 1.0, mode=mode),
                     # the mixture needs a reinforced model clearly more sure of the text and
                     # a strong α for a certain effect on these memorised random sequences
                     train_fn=train_fn_factory(3 if mode == "finetune" else 20, 1e-2,
                                               return_trainer=True),
                     output_dir=tmp_path, collator=None, lora=None)
    assert not hasattr(out, "merge_and_unload")
    # measured over 5 fixture seeds: mixture +0.23..+1.9 nats, finetune +0.8..+1.1
    assert forget_nll(out, forget) > before + 0.1
    assert isinstance(out, LogitMixture) == (mode == "mixture")  # MUSE: inference-time WHP
    assert (tmp_path / "generic" / "metrics.jsonl").is_file() == (mode == "finetune")
