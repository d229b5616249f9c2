"""`unlearn run` end to end on the tiny world: checkpoint, card, ledger, report, guard."""

import json

import pytest
import torch

from lethe.loading import load_model, load_tokenizer
from tests.helpers import run_cli
from unlearn.cli import main
from unlearn.data import LMCollator, tokenize_texts
from unlearn.methods.losses import nll
from unlearn.prepare import read_texts


def forget_loss(model_dir, world):
    model, tok = load_model(str(model_dir)), load_tokenizer(str(model_dir))
    texts = read_texts(str(world), "raw", "forget")
    with torch.no_grad():
        return nll(model, LMCollator(tok.pad_token_id)(tokenize_texts(tok, texts, 128))).item()


def args(tiny_prepared, out, *extra):
    _, overrides = tiny_prepared
    sets = [x for o in overrides + [f"output_dir={out}"] for x in ("--set", o)]
    return ["run", "recipes/tiny.yaml", *sets, *extra]


def test_run_writes_checkpoint_card_ledger_and_report(tiny_prepared, tmp_path, capsys,
                                                      monkeypatch):
    root, _ = tiny_prepared
    out = tmp_path / "ga"
    code, stdout, err = run_cli(main, args(tiny_prepared, out, "--set", "train.learning_rate=5e-3",
                                           "--set", "eval.metrics=[knowmem_r,privleak]"),
                                capsys, monkeypatch)
    assert code == 0, err
    assert (out / "model" / "model.safetensors").is_file()
    card = (out / "model" / "README.md").read_text()
    assert "ga unlearning" in card and "learning_rate: 0.005" in card and "split `forget`" in card
    ledger = json.loads((out / "ledger.json").read_text())
    assert [r["label"] for r in ledger["requests"]] == ["forget"]
    results = json.loads((out / "results.json").read_text())
    assert [m["label"] for m in results["models"]] == ["target", "ga", "retrain"]
    assert (out / "results.md").is_file() and (out / "results.png").stat().st_size > 1000
    assert "PrivLeak" in stdout
    # gradient ascent really raised the forget-set loss
    assert forget_loss(out / "model", root / "world") > \
        forget_loss(root / "models" / "target", root / "world") + 0.05


def test_divergence_stops_with_one_clear_line(tiny_prepared, tmp_path, capsys, monkeypatch):
    out = tmp_path / "boom"
    code, _, err = run_cli(main, args(tiny_prepared, out, "--set", "train.learning_rate=50",
                                      "--set", "train.max_steps=30", "--set",
                                      "guard.max_abs_loss=100", "--no-eval"),
                           capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    assert "training diverged at step" in err and "lower train.learning_rate" in err
    assert not (out / "model").exists()


def test_sequential_requests_resume_and_ledger(tiny_prepared, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sust"
    sust = ["--set", "requests.forget=[{config: sust, split: forget_1}, "
                     "{config: sust, split: forget_2}]", "--no-eval"]
    code, _, err = run_cli(main, args(tiny_prepared, out, *sust), capsys, monkeypatch)
    assert code == 0, err
    ledger = json.loads((out / "ledger.json").read_text())
    first, second = ledger["requests"]
    assert (first["label"], second["label"]) == ("sust/forget_1", "sust/forget_2")
    assert second["start"] == first["model"]  # sequential: each request builds on the last
    stamp = (out / "request_2" / "model" / "model.safetensors").stat().st_mtime_ns
    # refusing to clobber, then resuming: finished requests are skipped, nothing retrained
    code, _, err = run_cli(main, args(tiny_prepared, out, *sust), capsys, monkeypatch)
    assert code == 2 and "not empty" in err
    code, _, err = run_cli(main, args(tiny_prepared, out, *sust, "--resume"), capsys,
                           monkeypatch)
    assert code == 0, err
    assert (out / "request_2" / "model" / "model.safetensors").stat().st_mtime_ns == stamp


def test_variants_share_one_report(tiny_prepared, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    code, stdout, err = run_cli(main, args(
        tiny_prepared, out, "--set", "variants={ga: {method: {name: ga}}, "
                                     "gd: {method: {name: grad_diff, alpha: 1.0}}}",
        "--set", "eval.metrics=[privleak]", "--set", "eval.include_target=false"),
        capsys, monkeypatch)
    assert code == 0, err
    labels = [m["label"] for m in json.loads((out / "results.json").read_text())["models"]]
    assert labels == ["ga", "gd", "retrain"]
    assert (out / "ga" / "model").is_dir() and (out / "gd" / "model").is_dir()


def test_variant_with_unknown_key_fails_before_running(tiny_prepared, tmp_path, capsys,
                                                       monkeypatch):
    code, _, err = run_cli(main, args(tiny_prepared, tmp_path / "x", "--set",
                                      "variants={ga: {method: {name: ga, betta: 1}}}"),
                           capsys, monkeypatch)
    assert code == 2 and "unknown key 'betta' in variants.ga.method" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("recipe", ["recipes/harry_potter.yaml", "recipes/muse_news_sust.yaml"])
def test_gpu_recipes_resolve_offline(recipe, capsys, monkeypatch):
    """Offline, a GPU recipe still resolves (the dry run prints it) and its preflight names
    exactly what it cannot reach: the hub target and the hub dataset, one line each."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_cli(main, ["run", recipe, "--dry-run"], capsys, monkeypatch)
    assert "deepspeed: recipes/deepspeed/zero3.json" in out and "bf16: true" in out
    assert code == 2 and "preflight: ok" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all("is not available offline" in line for line in lines), err
    assert "model.target: model 'muse-bench/" in lines[0]
    assert "data: dataset 'muse-bench/" in lines[1]


def test_rome_method_edits_only_the_chosen_down_projection(tiny_prepared, tmp_path, capsys,
                                                           monkeypatch):
    from safetensors.torch import load_file

    root, _ = tiny_prepared
    out = tmp_path / "rome"
    code, _, err = run_cli(main, args(
        tiny_prepared, out, "--set", "method={name: rome, objective: empty_response, layer: 0, v_steps: 3, "
                                     "cov_config: raw, cov_split: retain1, cov_samples: 6, "
                                     "context_lengths: []}",
        "--set", "data.forget={config: facts, split: forget, field: prompt}",
        "--set", "data.retain=null", "--no-eval"), capsys, monkeypatch)
    assert code == 0, err
    record = json.loads((out / "ledger.json").read_text())["requests"][0]
    assert record["edited_facts"] == len(read_texts(str(root / "world"), "facts", "forget",
                                                    "prompt"))
    before = load_file(root / "models" / "target" / "model.safetensors")
    after = load_file(out / "model" / "model.safetensors")
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["model.layers.0.mlp.down_proj.weight"]  # layer 1 is the last of 2


@pytest.mark.slow
@pytest.mark.deepspeed
def test_run_under_accelerate_launch_with_zero3(tiny_prepared, tmp_path):
    """`accelerate launch -m unlearn run` with ZeRO-3: NPO+GDR trains (reference log-probs are
    cached before DeepSpeed wraps the model), the saved weights are gathered and load."""
    import os
    import subprocess
    import sys

    pytest.importorskip("deepspeed")
    _, overrides = tiny_prepared
    out = tmp_path / "z3"
    sets = [x for o in overrides + [f"output_dir={out}", "method={name: npo_gdr}",
                                    "train.deepspeed=recipes/deepspeed/zero3.json"]
            for x in ("--set", o)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "unlearn", "run", "recipes/tiny.yaml", *sets, "--no-eval"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "HF_HUB_OFFLINE": "1"},
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = load_model(str(out / "model"))
    assert model.model.embed_tokens.weight.shape[0] == model.config.vocab_size
    records = [json.loads(line) for line in (out / "trainer" / "metrics.jsonl").open()]
    assert any("npo" in r and "retain_nll" in r for r in records)


def test_whp_as_muse_evaluates_it_from_run_and_eval(tiny_prepared, tmp_path, capsys,
                                                    monkeypatch):
    """`method: whp` (mode mixture, MUSE's WHP) saves the baseline + reinforced mixture, which
    `unlearn eval` scores (the run's own report builds its rows the same way,
    pipeline.model_entry -> ModelEntry.from_spec); sequential requests are refused."""
    from lethe.mixture import LogitMixture, mixture_info

    root, _ = tiny_prepared
    out = tmp_path / "whp"
    code, _, err = run_cli(main, args(tiny_prepared, out, "--set", "method={name: whp}",
                                      "--no-eval"), capsys, monkeypatch)
    assert code == 0, err
    info = mixture_info(out / "model")
    assert info["alpha"] == 1.0 and (out / "model" / "reinforced" / "config.json").is_file()
    assert info["baseline"] == str((root / "models" / "target").resolve())  # named, not copied
    assert isinstance(load_model(str(out / "model")), LogitMixture)
    code, _, err = run_cli(main, ["eval", str(out / "model"), "--data", str(root / "world"),
                                  "--metrics", "knowmem_f", "--out", str(tmp_path / "eval")],
                           capsys, monkeypatch)
    assert code == 0, err
    row = json.loads((tmp_path / "eval" / "results.json").read_text())["models"][0]
    assert row["identity"]["mixture"]["alpha"] == 1.0 and "knowmem_f" in row["scores"]
    sust = [x for s in ("requests.mode=sequential", "requests.forget=[{config: sust, split: "
                        "forget_1}, {config: sust, split: forget_2}]") for x in ("--set", s)]
    code, _, err = run_cli(main, args(tiny_prepared, tmp_path / "seq", "--set",
                                      "method={name: whp}", *sust, "--dry-run"),
                           capsys, monkeypatch)
    assert code == 2 and "use mode finetune for sequential requests" in err
