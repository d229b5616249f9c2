"""GRPO / RLOO on a tiny Llama with toy scorers: one step moves the LoRA weights, a short run
writes an adapter that lethe.loading (and so `detox rewrite`) loads."""

import csv
from pathlib import Path
import json

import pytest
import torch

from detox_tiny import INSULTS, synthetic_rows
from lethe.recipe import build

from detox.train.recipe import DetoxTrainRecipe


class ToyAppropriateness:
    """P(appropriate): 0.2 if an insult word is present, else a value that varies with length
    (so completions of one prompt get different rewards and GRPO has an advantage)."""

    def score(self, texts, sources=None):
        return [0.2 if any(w in t.split() for w in INSULTS) else 0.5 + (len(t) % 5) / 10
                for t in texts]


def _scorers():
    from eval.detox.similarity import EmbeddingSimilarity

    return {"appropriateness": ToyAppropriateness(),
            "similarity": EmbeddingSimilarity("hashing:256")}


def _corpus(path):
    rows = [(t, y, "TRAIN") for t, y in synthetic_rows(24, 1)]
    rows += [(t, y, "VALID") for t, y in synthetic_rows(8, 2)]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["post_text", "Inappropriateness", "fold0.0"])
        w.writerows(rows)


def _recipe(tmp_path, model, **over):
    _corpus(tmp_path / "args.csv")
    raw = {"output_dir": str(tmp_path / "out"), "algorithm": "grpo",
           "model": {"name": model, "dtype": "float32"},
           "prompt": {"instruction_text": "Rewrite politely."},
           "data": {"source": str(tmp_path / "args.csv"), "max_train": 4, "max_eval": 2},
           "rewards": {"appropriateness": {"name": "profanity"},
                       "similarity": {"name": "embedding", "model": "hashing:256"}},
           "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
           "evaluate": {"max_new_tokens": 6, "batch_size": 2},
           "train": {"max_steps": 1, "learning_rate": 5e-2, "per_device_train_batch_size": 4,
                     "num_generations": 2, "max_completion_length": 8, "use_cpu": True,
                     "logging_steps": 1}}
    for key, value in over.items():
        node = raw
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return build(DetoxTrainRecipe, raw, source="test")


@pytest.mark.parametrize("algorithm,combine", [("grpo", "arithmetic"), ("rloo", "harmonic")])
def test_one_step_changes_the_lora_parameters(tmp_path, tiny_llama, algorithm, combine):
    from detox.train.rl import build_trainer

    recipe = _recipe(tmp_path, tiny_llama, algorithm=algorithm, **{"rewards.combine": combine})
    trainer, tok, base, eval_texts, info, weights = build_trainer(recipe, _scorers())
    # the filter kept only insulting arguments (the toy classifier gives them P(app) = 0.2)
    sources = trainer.train_dataset["source"]
    assert len(sources) == 4 and all(any(w in s.split() for w in INSULTS) for s in sources)
    # the conversation TRL renders is exactly the prompt `detox rewrite` builds
    from detox.train.policy import prompt_builder

    messages = trainer.train_dataset["prompt"][0]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        prompt_builder(tok, recipe.prompt).build(sources[0])
    assert trainer.args.beta == pytest.approx(0.001857)  # the paper's KL coefficient
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
            if "lora_" in n}
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
              if "lora_" not in n}
    assert lora and all(not torch.any(v) for n, v in lora.items() if "lora_B" in n)
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(lora[n], after[n]) for n in lora if "lora_B" in n)
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)  # the base stays put
    logged = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[0])
    parts = (["rewards/appropriateness/mean", "rewards/similarity/mean"]
             if combine == "arithmetic" else ["reward_parts/appropriateness",
                                              "reward_parts/similarity"])
    assert all(k in logged for k in parts + ["reward"]), logged


def test_short_run_writes_a_loadable_adapter_and_a_report(tmp_path, tiny_llama):
    from lethe.loading import load_model, resolve_model

    from detox.train.rl import run_rl

    recipe = _recipe(tmp_path, tiny_llama, **{"train.max_steps": 2})
    res = run_rl(recipe, scorers=_scorers())
    out = tmp_path / "out"
    src = resolve_model(str(out / "model"))
    assert src.kind == "adapter"  # with a loadable base recorded:
    assert Path(src.base).resolve() == Path(tiny_llama).resolve()
    model = load_model(str(out / "model"))
    assert any("lora_B" in n and torch.any(p) for n, p in model.named_parameters())
    assert [r["step"] for r in res["curve"]] == [1, 2]
    assert {"reward", "appropriateness", "similarity"} <= set(res["curve"][0])
    assert res["eval"]["n"] == 2 and {"initial", "final"} <= set(res["eval"])
    assert set(res["eval"]["final"]) == {"appropriateness", "similarity", "reward"}
    rows = [json.loads(l) for l in (out / "rewrites.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"rewrite", "initial_rewrite", "source"} <= set(rows[0])
    for name in ("results.json", "results.md", "reward_curve.png", "recipe.yaml"):
        assert (out / name).is_file(), name


def test_a_warm_started_runs_initial_policy_is_the_warm_start_not_the_base(tmp_path, tiny_llama):
    """RL from an SFT adapter continues that adapter; its evaluation's "initial" policy must be
    the adapter it started from (disabling the adapters would score the bare base model)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lethe.lm import load_for_inference
    from detox.train.rl import _score_rewrites, run_rl

    torch.manual_seed(0)
    warm = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in warm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 2.0)  # far from the base, so the two policies write differently
    warm.save_pretrained(tmp_path / "warm")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(tmp_path / "warm")
    recipe = _recipe(tmp_path, str(tmp_path / "warm"), **{"train.max_steps": 1})
    res = run_rl(recipe, scorers=_scorers())
    rows = [json.loads(l) for l in (tmp_path / "out" / "rewrites.jsonl").read_text().splitlines()]
    texts = [r["source"] for r in rows]
    tok = AutoTokenizer.from_pretrained(tiny_llama, padding_side="left")

    def greedy(spec):
        model = load_for_inference(spec, dtype="float32", device="cpu", merge_adapter=False)
        return [r["rewrite"] for r in _score_rewrites(recipe, model, tok, texts, _scorers(),
                                                      "check")[1]]

    from_warm, from_base = greedy(str(tmp_path / "warm")), greedy(tiny_llama)
    assert from_warm != from_base  # the check can tell the two apart
    assert [r["initial_rewrite"] for r in rows] == from_warm
    assert res["eval"]["initial"]["similarity"] == pytest.approx(
        sum(_scorers()["similarity"].score(from_warm, sources=texts)) / len(texts))


def test_data_seed_fixes_the_prompts_and_evaluation_set_across_training_seeds(tmp_path,
                                                                              tiny_llama):
    from transformers import AutoTokenizer

    from detox.train.rl import build_datasets

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    over = {"data.max_train": 3, "data.max_eval": 2, "filter.enabled": False}

    def chosen(**more):
        ds, eval_texts, _ = build_datasets(_recipe(tmp_path, tiny_llama, **over, **more), tok,
                                           _scorers())
        return list(ds["source"]), eval_texts

    base = chosen(seed=0)
    assert chosen(seed=5) != base  # the training seed alone reshuffles the prompts
    assert chosen(seed=5, **{"data.seed": 0}) == base == chosen(seed=3, **{"data.seed": 0})
