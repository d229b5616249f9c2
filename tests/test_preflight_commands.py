"""Every long command refuses, before any training step and without writing a file, what a
later stage would refuse (issue #19): exit 2, one line per problem, naming it."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lethe.preflight import PreflightError
from tests.helpers import run_cli
from tests.preflight_tiny import files_under, save_adapter, save_llama


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pfc_models")
    small, wide = save_llama(root / "small", hidden=16), save_llama(root / "wide", hidden=24)
    return {"small": small, "wide": wide,
            "foreign": save_adapter(wide, root / "foreign", claims_base=small)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from unlearn.world import WorldSpec, generate_world, write_world

    return write_world(generate_world(WorldSpec(seed=0, size="tiny")),
                       tmp_path_factory.mktemp("pfc_world") / "world")


@pytest.fixture
def no_training(monkeypatch):
    """Constructing any trainer fails the test: the preflight must stop the run before."""
    def boom(*args, **kwargs):
        raise AssertionError("a trainer was constructed")

    monkeypatch.setattr("lethe.trainer.LetheTrainer.__init__", boom)
    monkeypatch.setattr("detox.train.runner.run", boom)
    monkeypatch.setattr("detox.train.classifier.train_classifier", boom)


def problems(code, err, n):
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == n and all(": error: " in line for line in lines), err
    return lines


def unlearn(argv, capsys, monkeypatch):
    from unlearn.cli import main

    return run_cli(main, argv, capsys, monkeypatch)


def tiny_recipe(tmp_path, **extra) -> str:
    body = {"method": {"name": "ga"}, "output_dir": str(tmp_path / "out"),
            "world": {"dir": str(tmp_path / "world"), "size": "tiny"},
            "data": {"source": str(tmp_path / "world")},
            "train": {"max_steps": 2, "per_device_train_batch_size": 2}, **extra}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


# ---------------------------------------------------------------------------------------------
# unlearn run / prepare


def test_run_refuses_an_empty_generated_qa_split_before_prepare(tmp_path, capsys, monkeypatch,
                                                                no_training):
    """The measured case: 4 forget chunks give no knowmem/forget_qa row; refused at once,
    naming the builder setting, with no data generated and no model trained."""
    sets = [f"shakespeare.dir={tmp_path}/data", f"prepare.out_dir={tmp_path}/models",
            f"model.target={tmp_path}/models/target", f"model.retrain={tmp_path}/models/retrain",
            f"data.source={tmp_path}/data", f"output_dir={tmp_path}/out",
            "shakespeare.max_forget_chunks=4", "shakespeare.max_retain_chunks=8"]
    before = files_under(tmp_path)
    code, _, err = unlearn(["run", "recipes/shakespeare.yaml",
                            *[x for s in sets for x in ("--set", s)]], capsys, monkeypatch)
    (line,) = problems(code, err, 1)
    assert "(config knowmem) split forget_qa (generated) is empty" in line
    assert line.endswith("raise shakespeare.max_forget_chunks (now 4)")
    assert files_under(tmp_path) == before


def test_run_refuses_privleak_without_a_retrain_reference(tmp_path, models, capsys,
                                                          monkeypatch, no_training):
    recipe = tiny_recipe(tmp_path, model={"target": models["small"]})
    code, _, err = unlearn(["run", recipe], capsys, monkeypatch)
    (line,) = problems(code, err, 1)
    assert "eval.metrics: privleak needs a retrain reference: set model.retrain" in line
    assert files_under(tmp_path) == {"r.yaml"}  # not even the world was written
    code, _, err = unlearn(["run", recipe, "--set", "model.retrain_auc=0.5", "--set",
                            "eval.metrics=[privleak]", "--dry-run"], capsys, monkeypatch)
    assert code == 0, err


def test_run_refuses_an_unwritable_output_dir_and_a_missing_retrain_together(
        tmp_path, models, capsys, monkeypatch, no_training):
    (tmp_path / "afile").write_text("x")
    recipe = tiny_recipe(tmp_path, model={"target": models["small"],
                                          "retrain": str(tmp_path / "no_retrain")},
                         output_dir=str(tmp_path / "afile" / "out"))
    code, _, err = unlearn(["run", recipe], capsys, monkeypatch)
    retrain, out = problems(code, err, 2)
    assert f"model.retrain: model path does not exist: {tmp_path}/no_retrain" in retrain
    assert f"output_dir {tmp_path}/afile/out cannot be created: {tmp_path}/afile is a file" \
        in out
    assert files_under(tmp_path) == {"r.yaml", "afile"}


def test_run_dry_run_prints_the_recipe_and_what_preflight_checked(tmp_path, models, capsys,
                                                                  monkeypatch, no_training):
    recipe = tiny_recipe(tmp_path, model={"target": models["small"], "retrain_auc": 0.5})
    code, out, err = unlearn(["run", recipe, "--dry-run"], capsys, monkeypatch)
    assert code == 0, err
    doc = yaml.safe_load(out)  # one YAML document: the resolved recipe, then the report
    assert doc["method"]["name"] == "ga" and doc["preflight"] == "ok"
    checked = "\n".join(doc["checked"])
    for needle in ["model.target", "LlamaForCausalLM", "raw/forget: 16 rows",
                   "eval (knowmem_f)", "knowmem/forget_qa:", "PrivLeak reference AUC 0.5",
                   "train: a valid TrainingArguments", "writable, new", "disk: about"]:
        assert needle in checked, needle
    assert files_under(tmp_path) == {"r.yaml"}


def test_dry_run_counts_disk_for_every_variant_and_says_each_kind_once(
        tmp_path, models, capsys, monkeypatch, no_training):
    """A comparison saves one checkpoint per variant: the estimate counts them all, and the
    line names identical variants once with their number (it listed them one by one)."""
    lora = {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]}
    recipe = tiny_recipe(tmp_path, model={"target": models["small"], "retrain_auc": 0.5},
                         lora=lora, save={"merge_lora": True},
                         variants={"ga": {"method": {"name": "ga"}},
                                   "npo": {"method": {"name": "npo"}},
                                   "gd": {"method": {"name": "grad_diff"}}})
    code, out, err = unlearn(["run", recipe, "--dry-run"], capsys, monkeypatch)
    assert code == 0, err
    (disk,) = [c for c in yaml.safe_load(out)["checked"] if c.startswith("disk: about")]
    assert disk.count("request(s) x") == 1, disk
    assert "3 variants x 1 request(s) x (adapter + merged model + " in disk, disk
    (tmp_path / "one").mkdir()
    single_recipe = tiny_recipe(tmp_path / "one", model={"target": models["small"],
                                                         "retrain_auc": 0.5},
                                lora=lora, save={"merge_lora": True})
    code, out, err = unlearn(["run", single_recipe, "--dry-run"], capsys, monkeypatch)
    assert code == 0, err
    (single,) = [c for c in yaml.safe_load(out)["checked"] if c.startswith("disk: about")]
    assert "variants x" not in single and "1 request(s) x (adapter + merged model" in single


def test_prepare_refuses_an_adapter_for_another_base(tmp_path, models, capsys, monkeypatch,
                                                     no_training):
    recipe = tiny_recipe(tmp_path, prepare={"out_dir": str(tmp_path / "models"),
                                            "base_model": models["foreign"]})
    code, _, err = unlearn(["prepare", recipe], capsys, monkeypatch)
    (line,) = problems(code, err, 1)
    assert f"prepare.base_model: adapter {models['foreign']} does not fit {models['small']}" \
        in line
    assert files_under(tmp_path) == {"r.yaml"}


# ---------------------------------------------------------------------------------------------
# unlearn eval / attack


def test_eval_reports_empty_split_missing_retrain_and_bad_out_together(
        tmp_path, models, world, capsys, monkeypatch):
    import shutil

    data = Path(shutil.copytree(world, tmp_path / "world"))
    (data / "knowmem" / "forget_qa.jsonl").write_text("")
    (tmp_path / "afile").write_text("x")
    before = files_under(tmp_path)
    code, _, err = unlearn(["eval", models["small"], "--data", str(data), "--retrain",
                            str(tmp_path / "gone"), "--out", str(tmp_path / "afile" / "o")],
                           capsys, monkeypatch)
    empty, retrain, out = problems(code, err, 3)
    assert "--data (knowmem_f)" in empty and "split forget_qa is empty" in empty
    assert "--retrain: model path does not exist" in retrain
    assert "--out" in out and "is a file" in out
    assert files_under(tmp_path) == before
    code, out, err = unlearn(["eval", models["small"], "--data", str(world), "--retrain-auc",
                              "0.5", "--out", str(tmp_path / "o"), "--dry-run"], capsys,
                             monkeypatch)
    assert code == 0 and out.startswith("preflight: ok"), err
    assert not (tmp_path / "o").exists()


def test_attack_refuses_an_adapter_for_another_base(tmp_path, models, world, capsys,
                                                    monkeypatch):
    code, _, err = unlearn(["attack", models["foreign"], "--data", str(world), "--out",
                            str(tmp_path / "out"), "--attacks", "head_projection,nope"],
                           capsys, monkeypatch)
    unknown, adapter = problems(code, err, 2)
    assert "unknown attack 'nope'" in unknown
    assert f"MODEL: adapter {models['foreign']} does not fit" in adapter
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# detox rewrite / train / train-classifier


def detox(args):
    from detox.cli import cli

    return CliRunner().invoke(cli, args)


def test_rewrite_refuses_an_adapter_for_another_base_and_a_missing_classifier(
        tmp_path, models):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1, "text": "you idiot"}\n')
    out = tmp_path / "out.jsonl"
    res = detox(["rewrite", str(inp), "-o", str(out), "--scores",
                 "--set", "rewriter.name=model", "--set", f"rewriter.model={models['small']}",
                 "--set", f"rewriter.adapter={models['foreign']}",
                 "--set", "scorers.sta.name=classifier",
                 "--set", f"scorers.sta.model={tmp_path}/no_classifier",
                 "--set", "scorers.sim.model=hashing:64",
                 "--set", f"scorers.fl.model={models['small']}"])
    assert isinstance(res.exception, PreflightError), res.output
    adapter, classifier = res.exception.problems
    assert adapter.startswith(f"rewriter.adapter: adapter {models['foreign']} does not fit")
    assert f"scorers.sta.model: model path does not exist: {tmp_path}/no_classifier" \
        in classifier
    assert files_under(tmp_path) == {"in.jsonl"}


def rl_recipe(tmp_path, models, **extra) -> str:
    (tmp_path / "args.csv").write_text("post_text,fold\nyou are an idiot,TRAIN\n"
                                       "shut up,TRAIN\nplease be kind,VALID\n")
    body = {"output_dir": str(tmp_path / "rl"), "model": {"name": models["small"]},
            "data": {"source": str(tmp_path / "args.csv"), "fold_field": "fold"},
            "rewards": {"appropriateness": {"name": "classifier",
                                            "model": str(tmp_path / "classifier" / "model"),
                                            "toxic_label": "inappropriate"},
                        "similarity": {"name": "embedding", "model": "hashing:64"}},
            "train": {"max_steps": 1, "num_generations": 2,
                      "per_device_train_batch_size": 2}, **extra}
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_train_refuses_a_classifier_that_does_not_exist_and_a_used_output_dir(
        tmp_path, models, no_training):
    recipe = rl_recipe(tmp_path, models)
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "results.json").write_text("{}")
    before = files_under(tmp_path)
    res = detox(["train", recipe])
    assert isinstance(res.exception, PreflightError), res.output
    classifier, out = res.exception.problems
    assert classifier == (f"rewards.appropriateness.model: model path does not exist: "
                          f"{tmp_path}/classifier/model")
    assert "output_dir" in out and "not empty" in out
    assert files_under(tmp_path) == before


def test_train_dry_run_checks_the_classifier_label(tmp_path, models, no_training):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tests.preflight_tiny import save_tokenizer

    cls_dir = tmp_path / "classifier" / "model"
    tok = save_tokenizer(cls_dir)
    LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, num_labels=2, pad_token_id=0,
        id2label={0: "neutral", 1: "toxic"})).save_pretrained(cls_dir)
    res = detox(["train", rl_recipe(tmp_path, models), "--dry-run"])
    assert isinstance(res.exception, PreflightError), res.output
    assert res.exception.problems == [
        f"rewards.appropriateness.model: classifier {cls_dir} has no label 'inappropriate' "
        f"(labels: 0=neutral, 1=toxic); set the scorer's label to one of them"]
    res = detox(["train", rl_recipe(tmp_path, models), "--dry-run", "--set",
                 "rewards.appropriateness.toxic_label=toxic"])
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(res.output)
    assert doc["preflight"] == "ok" and doc["resolved"]["trainer_config"] == "GRPOConfig"
    assert any("2 train prompt(s)" in line for line in doc["checked"])
    assert not (tmp_path / "rl").exists()


def test_train_classifier_refuses_labels_beyond_the_label_count(tmp_path, models, no_training):
    (tmp_path / "labels.csv").write_text("post_text,Inappropriateness,fold0.0\n"
                                         "you idiot,1,TRAIN\nthanks,0,TRAIN\nshut up,2,TRAIN\n"
                                         "be kind,0,VALID\nthe cat,0,TEST\n")
    body = {"output_dir": str(tmp_path / "cls"), "data": {"source": str(tmp_path / "labels.csv")},
            "model": {"name": str(tmp_path / "no_encoder")}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(body))
    res = detox(["train-classifier", str(tmp_path / "c.yaml")])
    assert isinstance(res.exception, PreflightError), res.output
    model, labels = res.exception.problems
    assert model == f"model.name: model path does not exist: {tmp_path}/no_encoder"
    assert "label 2 is not a class id in 0..1" in labels and labels.startswith("data: ")
    assert not (tmp_path / "cls").exists()
