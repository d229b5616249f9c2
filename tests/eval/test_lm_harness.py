"""`unlearn eval --lm-eval`: a local lm-evaluation-harness task (offline YAML + JSONL) scored
on a checkpoint and folded into the report, against the accuracy computed by hand."""

from __future__ import annotations

import json

import pytest
import torch

from tests.eval.eval_world import CITIES, PETS, build_world, person, qa
from tests.helpers import run_cli

pytest.importorskip("lm_eval")

TASK = """task: lethe_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def docs():
    """Forget questions the target was trained on and questions about unseen people."""
    import random

    world = build_world()
    rows = world["knowmem"]["forget_qa"] + [q for p in (person(random.Random(7), "Ola"),
                                                         person(random.Random(8), "Pia"))
                                            for q in qa(p)]
    out = []
    for i, r in enumerate(rows):
        pool = CITIES if r["answer"] in CITIES else PETS
        wrong = [v for v in pool if v != r["answer"]][i % 3:i % 3 + 2]
        choices = wrong[:i % 3] + [r["answer"]] + wrong[i % 3:]
        out.append({"question": r["question"], "choices": choices,
                    "label": choices.index(r["answer"])})
    return out


def loglik(model, tok, context: str, continuation: str) -> float:
    """The harness's log-likelihood: no BOS, the continuation's tokens are those the joint
    text adds after the context's."""
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([whole])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return sum(logp[t - 1, whole[t]].item() for t in range(n_ctx, len(whole)))


def test_lm_eval_task_folds_into_the_report(tmp_path, monkeypatch, capsys, saved_models,
                                            target_model, tokenizer, world_dir):
    from unlearn.cli import main

    rows = docs()
    (tmp_path / "tiny_mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny.yaml").write_text(TASK.format(data=tmp_path / "tiny_mc.jsonl"))
    out = tmp_path / "out"
    code, stdout, err = run_cli(main, [
        "eval", str(saved_models["target"]), "--data", str(world_dir), "--metrics",
        "knowmem_r", "--limit", "1", "--n-resamples", "20", "--out", str(out),
        "--lm-eval", "lethe_tiny_mc", "--lm-eval-include", str(tasks)], capsys, monkeypatch)
    assert code == 0, err
    got = json.loads((out / "results.json").read_text())["models"][0]["lm_eval"]
    hits = [max(range(len(r["choices"])), key=lambda j: loglik(
        target_model, tokenizer, f"Question: {r['question']}\nAnswer:", " " + r["choices"][j]))
        == r["label"] for r in rows]
    assert 0 < sum(hits) < len(hits)  # knows the trained answers, not the unseen people's
    assert got["lethe_tiny_mc"]["acc"] == pytest.approx(sum(hits) / len(hits))
    assert "## lm-evaluation-harness" in stdout and "lethe_tiny_mc acc" in stdout


def test_task_lookup_tries_the_local_tasks_before_the_catalogue(tmp_path, monkeypatch):
    """The harness's catalogue (~20 s to index) is read only when a task is not local."""
    import lm_eval.tasks

    from eval.lm_harness import HarnessSettings, task_manager
    from lethe.errors import LetheError

    calls = []

    class FakeManager:
        def __init__(self, include_path=None, include_defaults=True):
            calls.append(include_defaults)
            self.all_tasks = ["local_task"] + (["mmlu"] if include_defaults else [])

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", FakeManager)
    local = HarnessSettings(("local_task",), include=(str(tmp_path),))
    assert task_manager(local).all_tasks == ["local_task"] and calls == [False]
    calls.clear()
    assert "mmlu" in task_manager(HarnessSettings(("local_task", "mmlu"),
                                                  include=(str(tmp_path),))).all_tasks
    assert calls == [False, True]
    with pytest.raises(LetheError, match="unknown task.*no_such_task"):
        task_manager(HarnessSettings(("no_such_task",)))
