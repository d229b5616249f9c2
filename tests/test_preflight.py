"""lethe.preflight: the shared checks every long command's preflight is built from."""

import json
import sys
from collections import namedtuple

import click
import pytest

from lethe.deepspeed import deepspeed_config
from lethe.errors import LetheError
from lethe.preflight import (Preflight, PreflightError, check_disk, check_model,
                             check_output_dir, check_table, training_bytes)
from tests.preflight_tiny import save_adapter, save_llama


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pf_models")
    small, wide = save_llama(root / "small", hidden=16), save_llama(root / "wide", hidden=24)
    return {"small": small, "wide": wide,
            "fits": save_adapter(small, root / "fits"),
            "foreign": save_adapter(wide, root / "foreign", claims_base=small)}


def test_cli_prints_every_problem_on_its_own_line_and_exits_2(capsys, monkeypatch):
    from lethe.cli import run_cli

    @click.command()
    def cmd():
        pf = Preflight("demo")
        pf.run("data", lambda: (_ for _ in ()).throw(LetheError("split forget_qa is empty")))
        pf.problem("output_dir x exists and is a file; choose another path")
        pf.finish()

    monkeypatch.setattr(sys, "argv", ["demo"])
    with pytest.raises(SystemExit) as exc:
        run_cli(cmd, "demo")
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "demo: error: data: split forget_qa is empty",
        "demo: error: output_dir x exists and is a file; choose another path"]


def test_one_cause_is_reported_once():
    pf = Preflight("demo")
    for where in ("eval (verbmem_f)", "eval (privleak)"):
        pf.run(where, lambda: (_ for _ in ()).throw(LetheError("dataset 'x/y' is offline")))
    with pytest.raises(PreflightError) as err:
        pf.finish()
    assert err.value.problems == ["eval (verbmem_f): dataset 'x/y' is offline"]


def test_tables_rows_fields_and_types(tmp_path):
    (tmp_path / "knowmem").mkdir()
    (tmp_path / "knowmem" / "forget_qa.jsonl").write_text("")
    (tmp_path / "knowmem" / "retain_qa.jsonl").write_text(
        '{"question": "q1", "answer": 3}\n{"question": "q2", "answer": 4}\n')
    (tmp_path / "knowmem" / "ok.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    pf = Preflight("t")
    assert check_table(pf, str(tmp_path), config="knowmem", split="ok",
                       text=("question", "answer")) == 1
    check_table(pf, str(tmp_path), config="knowmem", split="forget_qa", text=("question",),
                hint="raise x.max (now 4)")
    check_table(pf, str(tmp_path), config="knowmem", split="retain_qa",
                text=("question", "answer"))
    check_table(pf, str(tmp_path), config="knowmem", split="gone", text=("question",))
    memory = {"knowmem": {"forget_qa": [], "ok": [{"question": "q"}]}}
    assert check_table(pf, "gen", config="knowmem", split="ok", text=("question",),
                       memory=memory) == 1
    check_table(pf, "gen", config="knowmem", split="forget_qa", text=("question",),
                memory=memory, hint="raise shakespeare.max_forget_chunks (now 4)")
    empty, types, gone, generated = pf.problems
    assert "split forget_qa is empty; raise x.max (now 4)" in empty
    assert "field answer holds int64 values, expected text" in types
    assert "no split 'gone'" in gone
    assert generated.endswith("split forget_qa (generated) is empty; raise "
                              "shakespeare.max_forget_chunks (now 4)")
    assert any("knowmem/ok: 1 rows" in line for line in pf.checked)


def test_model_config_parameters_and_tokenizer_without_loading_weights(models):
    from transformers import AutoModelForCausalLM

    pf = Preflight("t")
    info = check_model(pf, models["small"], where="model.target")
    want = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(models["small"])
               .parameters())
    assert info.n_params == want and info.dtype_bytes == 4 and len(info.tokenizer) == 22
    assert not pf.problems and "LlamaForCausalLM" in pf.checked[0]
    check_model(pf, models["small"] + "/nope", where="model.retrain")
    assert pf.problems == [f"model.retrain: model path does not exist: {models['small']}/nope"]


def test_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    from tests.preflight_tiny import save_tokenizer

    path = save_llama(tmp_path / "m")
    save_tokenizer(path, extra=5)  # 27 tokens, 22 embedding rows
    pf = Preflight("t")
    assert check_model(pf, path, where="model.target") is None
    assert "has 27 tokens but the model's embedding has 22 rows" in pf.problems[0]


def test_adapter_checked_against_its_base(models):
    pf = Preflight("t")
    info = check_model(pf, models["fits"], where="MODEL")
    assert info is not None and info.kind == "adapter" and not pf.problems
    assert any("4 adapted matrices fit the base" in line for line in pf.checked)
    assert check_model(pf, models["foreign"], where="MODEL") is None
    (line,) = pf.problems
    assert line.startswith(f"MODEL: adapter {models['foreign']} does not fit {models['small']}")
    assert "maps 16 -> 16 features" in line and "another base" in line


def test_output_dir_rules(tmp_path, monkeypatch):
    full = tmp_path / "full"
    full.mkdir()
    (full / "results.json").write_text("{}")
    afile = tmp_path / "afile"
    afile.write_text("x")
    pf = Preflight("t")
    assert check_output_dir(pf, tmp_path / "new")
    assert check_output_dir(pf, full, resume=True)
    assert not check_output_dir(pf, full)
    assert not check_output_dir(pf, afile / "out")
    monkeypatch.setattr("os.access", lambda path, mode: False)
    assert not check_output_dir(pf, tmp_path / "locked")
    refused, under_file, locked = pf.problems
    assert "exists and is not empty; pass --overwrite" in refused
    assert f"cannot be created: {afile} is a file" in under_file
    assert f"is not writable (no write permission on {tmp_path})" in locked
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_deepspeed_configs(tmp_path):
    assert deepspeed_config("recipes/deepspeed/zero3.json") == 3
    bad = tmp_path / "bad.json"
    bad.write_text("{stage: 3")
    five = tmp_path / "five.json"
    five.write_text(json.dumps({"zero_optimization": {"stage": 5}}))
    for spec, needle in [(tmp_path / "none.json", "config file not found"),
                         (bad, "is not valid JSON"), (five, "zero_optimization.stage is 5")]:
        with pytest.raises(LetheError, match=needle):
            deepspeed_config(str(spec))


def test_disk_estimate_and_refusal(tmp_path, monkeypatch):
    # 1000 parameters in fp32: 4000 bytes of weights + 8000 of AdamW moments per checkpoint;
    # 10 steps saving every 3 -> 3 saves, save_total_limit 2 keeps 2.
    train = {"save_strategy": "steps", "save_steps": 3, "max_steps": 10, "save_total_limit": 2}
    assert training_bytes(train, n_params=1000, dtype_bytes=4)[0] == 2 * 12000
    assert training_bytes({**train, "save_only_model": True}, n_params=1000,
                          dtype_bytes=4)[0] == 2 * 4000
    assert training_bytes({}, n_params=1000, dtype_bytes=4)[0] == 0  # save_strategy: no
    lora = training_bytes({"save_strategy": "epoch", "num_train_epochs": 3}, n_params=1000,
                          dtype_bytes=2, trainable=10)
    assert lora[0] == 3 * (10 * 2 + 10 * 4)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(10**6, 0, 5000))
    pf = Preflight("t")
    check_disk(pf, tmp_path / "out", 4000, "a model")
    check_disk(pf, tmp_path / "out", 24000, "2 checkpoints")
    assert len(pf.problems) == 1 and "needs about 23.4 KB (2 checkpoints) but only 4.9 KB" \
        in pf.problems[0]
