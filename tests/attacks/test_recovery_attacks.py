"""Relearning and quantization attacks on the tiny world (unlearn/relearn.py,
unlearn/robustness.py, `unlearn attack --attacks relearn,quantize`): the relearning attack
lowers a GA-unlearned model's forget-set NLL, recovery is computed from the suite's per-row
scores, and bad input is one line with exit 2."""

import json
import math
from pathlib import Path

import pytest
import torch

from tests.helpers import fixture_seed, run_cli


def _forget_texts(world) -> list[str]:
    from lethe.loading import load_table

    return list(load_table(str(world), config="raw", split="forget", columns=("text",))["text"])


def _nll(model, tok, texts) -> float:
    """Mean next-token NLL over every token of `texts`."""
    total, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok(t)["input_ids"]])
            out = model(input_ids=ids, labels=ids)
            n = ids.shape[1] - 1
            total, count = total + out.loss.item() * n, count + n
    return total / count


@pytest.fixture(scope="module")
def unlearned(tiny_prepared, tmp_path_factory):
    """(world, target dir, GA-unlearned dir, the GA model's forget NLL): gradient ascent on the
    forget texts until the forget NLL has risen far above the target's (> 3.5 nats/token; a
    fixed step count fell short of that on some worlds: 6 steps rose 2.8 nats on world v3)."""
    from lethe.loading import load_model, load_tokenizer

    root, _ = tiny_prepared
    target = root / "models" / "target"
    tok, model = load_tokenizer(str(target)), load_model(str(target), dtype="float32")
    texts = _forget_texts(root / "world")
    goal = _nll(model, tok, texts) + 3.5
    torch.manual_seed(fixture_seed(7))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):  # measured: 6-8 steps
        model.train()
        for t in texts[:8]:
            ids = torch.tensor([tok(t)["input_ids"]])
            (-model(input_ids=ids, labels=ids).loss).backward()
        opt.step()
        opt.zero_grad()
        model.eval()
        if _nll(model, tok, texts) > goal:
            break
    out = tmp_path_factory.mktemp("ga") / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return root / "world", target, out, _nll(model, tok, texts)


@pytest.mark.parametrize("on", ["forget", "retain"])
def test_relearn_lowers_the_forget_nll_of_a_ga_model(unlearned, tmp_path, on):
    from lethe.loading import load_model, load_tokenizer
    from unlearn.relearn import RelearnSpec, relearn, slice_texts

    world, target, ga, ga_nll = unlearned
    tok = load_tokenizer(str(target))
    target_nll = _nll(load_model(str(target)), tok, _forget_texts(world))
    assert ga_nll > target_nll + 3  # the fixture did unlearn
    spec = RelearnSpec(on=on, texts=4, steps=10, learning_rate=3e-3, seed=fixture_seed(0))
    texts = slice_texts(str(world), spec)
    assert len(texts) == 4
    rest = [t for t in _forget_texts(world) if t not in texts]  # never trained on
    model = relearn(load_model(str(ga), dtype="float32"), tok, texts, spec, tmp_path,
                    use_cpu=True)
    after = _nll(model, tok, rest)
    ga_rest = _nll(load_model(str(ga)), tok, rest)
    # measured on world v2: 7.0 -> 4.8 (forget slice), 7.1 -> 5.1 (retain slice); target 3.4
    assert after < ga_rest - 1, (ga_rest, after)  # nats per token
    log = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, 11))


def _run(monkeypatch, capsys, *args):
    """`unlearn attack ARGS` in-process: (exit code, stderr)."""
    from unlearn.cli import main

    code, _, err = run_cli(main, ["attack", *args], capsys, monkeypatch)
    return code, err


def test_attack_command_relearn_and_quantize(unlearned, tmp_path, monkeypatch, capsys):
    world, target, ga, _ = unlearned
    out = tmp_path / "out"
    code, err = _run(monkeypatch, capsys, str(ga), "--data", str(world), "--attacks",
                    "relearn,quantize", "--target", str(target), "--relearn-texts", "2",
                    "--relearn-steps", "2", "--bits", "8", "--limit", "4", "--metrics",
                    "verbmem_f,knowmem_r", "--out", str(out), "--device", "cpu")
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    rec = res["recovery"]
    assert list(rec["attacks"]) == ["relearn_forget", "relearn_retain", "int8"]
    suite = json.loads((out / "suite" / "results.json").read_text())
    rows = {r["label"]: r["scores"] for r in suite["models"]}
    assert set(rows) == {"target", "unlearned", "relearn_forget", "relearn_retain", "int8"}
    texts = _forget_texts(world)[:2]
    from lethe.loading import load_table

    prompts = load_table(str(world), config="verbmem", split="forget")["prompt"][:4]
    kept = [i for i, p in enumerate(prompts) if not any(p.strip() in t for t in texts)]
    assert 0 < len(kept) < 4  # the two relearned documents are left out
    for label in rec["attacks"]:
        m = rec["attacks"][label]["metrics"]["verbmem_f"]
        rows_used = kept if label == "relearn_forget" else range(4)
        mean = {k: sum(rows[k]["verbmem_f"]["per_example"][i] for i in rows_used)
                / len(rows_used) for k in ("target", "unlearned", label)}
        assert m["n"] == len(rows_used)
        assert m["before"] == pytest.approx(mean["unlearned"])
        assert m["after"] == pytest.approx(mean[label])
        gap = mean["target"] - mean["unlearned"]
        if abs(gap) > 1e-9:
            want = (mean[label] - mean["unlearned"]) / gap
            assert m["recovery"]["value"] == pytest.approx(want)
            low, high = m["recovery"]["ci_low"], m["recovery"]["ci_high"]
            assert math.isnan(low) or low <= want + 1e-9 <= high + 2e-9
        assert rec["attacks"][label]["metrics"]["knowmem_r"]["recovery"] is None  # utility
    assert rec["attacks"]["int8"]["details"]["max_error_in_steps"] <= 0.5 + 1e-4
    md = (out / "results.md").read_text()
    assert "| attack | metric | target | unlearned | attacked | recovery | rows |" in md
    assert (out / "results.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--attacks", "relern"], "unknown attack 'relern'"),
    (["--attacks", "quantize", "--bits", "3"], "--bits 3: quantization supports 4 and 8 bits"),
    (["--attacks", "relearn", "--relearn-texts", "500"], "is larger than the forget set"),
    (["--attacks", "relearn", "--relearn-on", "forget", "--relearn-texts", "N_FORGET"],
     "is the whole forget set"),
    (["--attacks", "quantize", "--target", None], "give it with --target MODEL"),
    (["--attacks", "quantize", "--target", "TOY"], "has a different tokenizer from"),
    (["--attacks", "quantize", "--metrics", "privleak"], "privleak needs a retrain reference"),
])
def test_recovery_bad_input_exits_2(unlearned, checkpoints, tmp_path, monkeypatch, capsys,
                                    args, message):
    world, target, ga, _ = unlearned
    args = [str(len(_forget_texts(world))) if a == "N_FORGET" else a for a in args]
    if "--target" not in args:
        args += ["--target", str(target)]
    i = args.index("--target")
    if args[i + 1] is None:
        del args[i:i + 2]
    elif args[i + 1] == "TOY":
        args[i + 1] = str(checkpoints[1])
    code, err = _run(monkeypatch, capsys, str(ga), "--data", str(world), "--out",
                    str(tmp_path / "o"), "--device", "cpu", *args)
    errors = [x for x in err.splitlines() if x.startswith("unlearn: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err and not Path(tmp_path / "o").exists()
