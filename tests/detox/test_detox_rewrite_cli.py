"""`detox rewrite`: end to end on a tiny Llama -- resume, kills, bad lines, stdin/stdout."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from detox.cli import cli
from lethe.errors import LetheError
from tests.helpers import fixture_seed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "input.jsonl"


def invoke(args, input=None):
    return CliRunner().invoke(cli, args, input=input)


def lines(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines()]


def synthetic_input(path, n):
    from detox.rewrite.fewshot import load_pool

    demos = load_pool("builtin")
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"s{i}", "text": demos[i % len(demos)].source}) + "\n")
    return path


def test_rewrite_examples_then_rerun_is_a_no_op(tmp_path, tiny_recipe_args, index_cache):
    out = tmp_path / "out.jsonl"
    res = invoke(["rewrite", str(EXAMPLES), "-o", str(out), *tiny_recipe_args])
    assert res.exit_code == 0, res.output
    got = lines(out)
    want = [json.loads(x) for x in EXAMPLES.read_text().splitlines()]
    assert [g["id"] for g in got] == [w["id"] for w in want]
    assert all(g["text"] == w["text"] and isinstance(g["rewrite"], str)
               for g, w in zip(got, want))
    assert got[8]["context"] == want[8]["context"] and "scores" not in got[0]
    assert "15 line(s) rewritten" in res.stderr and "lines/s" in res.stderr
    assert list(index_cache.glob("detox-index/*.npy"))  # the pool index was cached
    before = out.read_bytes()
    again = invoke(["rewrite", str(EXAMPLES), "-o", str(out), *tiny_recipe_args])
    assert again.exit_code == 0 and "0 line(s) rewritten, 15 already done" in again.stderr
    assert out.read_bytes() == before


def test_resume_after_a_torn_last_line(tmp_path, tiny_recipe_args, index_cache):
    args = [*tiny_recipe_args, "--set", "generation.batch_size=1", "--set", "generation.window=1"]
    full = tmp_path / "full.jsonl"
    assert invoke(["rewrite", str(EXAMPLES), "-o", str(full), *args]).exit_code == 0
    raw = full.read_bytes().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(raw[:6]) + raw[6][: len(raw[6]) // 2])  # killed mid-line 7
    res = invoke(["rewrite", str(EXAMPLES), "-o", str(part), *args])
    assert res.exit_code == 0, res.output
    assert "9 line(s) rewritten, 6 already done" in res.stderr
    assert part.read_bytes() == full.read_bytes()


def test_batched_rewrites_equal_one_at_a_time(tmp_path, tiny_recipe_args, index_cache):
    one, four = tmp_path / "one.jsonl", tmp_path / "four.jsonl"
    assert invoke(["rewrite", str(EXAMPLES), "-o", str(one), *tiny_recipe_args,
                   "--set", "generation.batch_size=1", "--set", "generation.window=1"]
                  ).exit_code == 0
    assert invoke(["rewrite", str(EXAMPLES), "-o", str(four), *tiny_recipe_args,
                   "--set", "generation.batch_size=4"]).exit_code == 0
    assert [x["rewrite"] for x in lines(one)] == [x["rewrite"] for x in lines(four)]


def test_sigkill_mid_run_loses_no_finished_line(tmp_path, tiny_recipe_args, index_cache):
    """A real SIGKILL of the console command, a torn tail on top, then a resume."""
    inp = synthetic_input(tmp_path / "in.jsonl", 30)
    args = [*tiny_recipe_args, "--set", "generation.batch_size=1", "--set", "generation.window=1",
            "--set", "generation.max_new_tokens=12"]
    out = tmp_path / "killed.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "detox", "rewrite", str(inp), "-o", str(out),
                             *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # imports alone took 60-90 s at load average 8
    while time.time() < deadline and proc.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.01)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not still_running:
        pytest.skip("the run finished before it could be killed")
    kept = out.read_bytes()
    finished = kept[: kept.rfind(b"\n") + 1]  # whole lines written before the kill
    assert finished.count(b"\n") >= 2
    with out.open("ab") as fh:  # plus a torn half line, as a kill inside write() would leave
        fh.write(b'{"id": "s29", "text": "you are a complete id')
    res = invoke(["rewrite", str(inp), "-o", str(out), *args])
    assert res.exit_code == 0, res.output
    assert out.read_bytes().startswith(finished)  # no finished line lost or rewritten
    got = lines(out)  # every line parses: the torn tail is gone
    assert [g["id"] for g in got] == [f"s{i}" for i in range(30)]
    assert "already done" in res.stderr


def test_bad_lines_fail_before_any_generation(tmp_path, tiny_recipe_args):
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b'{"id": 1, "text": "ok"}\n{"id": 2, "text": 5}\n{"id": 1, "text": "x"}\n'
                    b'\xff\xfe\n{"id": 4, "text": "fine"}\n')
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    # a model that does not exist: validation must stop the run before it is ever loaded
    res = invoke(["rewrite", str(inp), "-o", str(out), *tiny_recipe_args,
                  "--set", "rewriter.model=/nonexistent/model"])
    assert isinstance(res.exception, LetheError)
    # the preflight reports both problems together, one line each
    lines = str(res.exception).splitlines()
    assert len(lines) == 2, lines
    model_line, lines_line = sorted(lines, key=lambda line: "bad line(s)" in line)
    assert "rewriter.model: model path does not exist: /nonexistent/model" in model_line
    assert "3 bad line(s): line 2: 'text' must be a string" in lines_line
    assert "line 3: duplicate id 1" in lines_line and "line 4: not UTF-8" in lines_line
    assert "--on-error skip" in lines_line
    assert out.read_text() == "precious\n"


def test_on_error_skip_writes_only_good_lines(tmp_path, tiny_recipe_args, index_cache):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1, "text": "you idiot"}\nnot json\n{"id": 3, "text": "shut up"}\n')
    out = tmp_path / "out.jsonl"
    res = invoke(["rewrite", str(inp), "-o", str(out), "--on-error", "skip", *tiny_recipe_args])
    assert res.exit_code == 0, res.output
    assert [x["id"] for x in lines(out)] == [1, 3]
    assert "line 2: invalid JSON" in res.stderr and "1 bad line(s) skipped" in res.stderr


def test_stdin_to_stdout(tiny_recipe_args, index_cache):
    data = '{"id": "a", "text": "you idiot"}\n{"id": "b", "text": "shut up", "context": "hi"}\n'
    res = invoke(["rewrite", "-", *tiny_recipe_args], input=data.encode())
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in res.stdout.splitlines()]
    assert [g["id"] for g in got] == ["a", "b"] and got[1]["context"] == ["hi"]
    assert "2 line(s) rewritten" in res.stderr and "<stdout>" in res.stderr


def test_overwrite_and_foreign_outputs(tmp_path, tiny_recipe_args, index_cache):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 999, "text": "t", "rewrite": "r"}\n')
    res = invoke(["rewrite", str(EXAMPLES), "-o", str(out), *tiny_recipe_args])
    assert isinstance(res.exception, LetheError) and "999" in str(res.exception)
    res = invoke(["rewrite", str(EXAMPLES), "-o", str(out), "--overwrite", *tiny_recipe_args])
    assert res.exit_code == 0, res.output
    assert len(lines(out)) == 15 and 999 not in [x["id"] for x in lines(out)]
    res = invoke(["rewrite", str(EXAMPLES), "-o", str(EXAMPLES)])
    assert isinstance(res.exception, LetheError) and "is the input file" in str(res.exception)


def test_best_of_n_keeps_the_top_ranked_candidate(tiny_llama, index_cache):
    from detox.rewrite.recipe import load_rewrite_recipe
    from detox.rewrite.rewriters import Item, build_rewriter
    from eval.detox.scorers import Scorers

    recipe = load_rewrite_recipe(str(ROOT / "recipes" / "detox" / "best_of_n.yaml"), [
        "rewriter.n=3", f"rewriter.base.model={tiny_llama}",
        "rewriter.base.embedder=hashing:512", "generation.max_new_tokens=6",
        "scorers.sim.model=hashing:512", f"scorers.fl.model={tiny_llama}"])
    scorers = Scorers.from_config(recipe.scorers)
    bon = build_rewriter(recipe.rewriter, recipe, scorers)
    items = [Item("you are an idiot"), Item("shut up and leave", ("hello",))]
    got = bon.rewrite(items)
    # recompute the candidates (sampling is seeded by the batch) and their ranking by hand
    prompts = bon.base.prompts(items)
    sampled = bon.base.candidates(items, n=3, prompts=prompts,
                                  sampling={"temperature": 1.0, "top_p": 0.95})
    greedy = bon.base.candidates(items, prompts=prompts)
    for item, g, s, r in zip(items, greedy, sampled, got):
        cands = g + s
        srcs = [item.text] * len(cands)
        rank = [a * b * c for a, b, c in zip(scorers.sta.score(cands),
                                              scorers.sim.score(cands, srcs),
                                              scorers.fl.score(cands))]
        assert r.text == cands[rank.index(max(rank))]
        assert r.scores["sta"] * r.scores["sim"] * r.scores["fl"] == pytest.approx(max(rank))


def test_scores_flag_adds_components(tmp_path, tiny_recipe_args, index_cache):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1, "text": "you idiot"}\n')
    out = tmp_path / "out.jsonl"
    assert invoke(["rewrite", str(inp), "-o", str(out), "--scores",
                   *tiny_recipe_args]).exit_code == 0
    scores = lines(out)[0]["scores"]
    assert set(scores) == {"sta", "sim", "fl"} and all(0 <= v <= 1 for v in scores.values())


def test_console_errors_are_one_line_with_exit_code_2(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1}\n')
    proc = subprocess.run([sys.executable, "-m", "detox", "rewrite", str(inp), "-o",
                           str(tmp_path / "o.jsonl")], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"detox: error: {inp}: 1 bad line(s): line 1: missing 'text'; nothing was generated. "
        f"Fix them or pass --on-error skip"]
    assert not (tmp_path / "o.jsonl").exists()


def test_model_rewriter_with_a_lora_adapter_and_a_seq2seq_model(tmp_path, tiny_llama,
                                                                tiny_tokenizer_dir):
    """`model` rewriter: a causal LM + PEFT adapter (chat prompt), and a seq2seq model (raw)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1, "text": "you idiot"}\n{"id": 2, "text": "shut up"}\n')
    adapter = tmp_path / "adapter"
    torch.manual_seed(fixture_seed(0))
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    peft_model.save_pretrained(adapter)
    base = ["--set", "rewriter.name=model", "--set", "generation.max_new_tokens=5"]
    outs = {}
    for name, extra in [("plain", ["--set", f"rewriter.model={tiny_llama}"]),
                        ("lora", ["--set", f"rewriter.model={tiny_llama}",
                                  "--set", f"rewriter.adapter={adapter}"]),
                        ("adapter_dir", ["--set", f"rewriter.model={adapter}"])]:
        out = tmp_path / f"{name}.jsonl"
        res = invoke(["rewrite", str(inp), "-o", str(out), *base, *extra])
        assert res.exit_code == 0, res.output
        outs[name] = [x["rewrite"] for x in lines(out)]
    assert outs["lora"] == outs["adapter_dir"]  # the adapter dir names its base model
    # a random adapter (init_lora_weights=False) changes the greedy rewrites of the base
    assert outs["lora"] != outs["plain"]

    t5_dir = _tiny_t5(tmp_path / "t5", tiny_tokenizer_dir)
    out = tmp_path / "t5.jsonl"
    res = invoke(["rewrite", str(inp), "-o", str(out), *base, "--set", f"rewriter.model={t5_dir}",
                  "--set", "rewriter.prompt.template='detox: {text}'"])  # values are YAML
    assert res.exit_code == 0, res.output
    assert [x["id"] for x in lines(out)] == [1, 2]


def _tiny_t5(path, tokenizer_dir):
    """A random 1-layer T5 saved with the tiny test tokenizer (a seq2seq rewriter)."""
    import shutil

    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    shutil.copytree(tokenizer_dir, path)
    tok = AutoTokenizer.from_pretrained(path)
    T5ForConditionalGeneration(T5Config(
        vocab_size=len(tok), d_model=32, d_ff=64, d_kv=8, num_layers=1, num_heads=2,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id)).save_pretrained(path)
    return path


def test_seq2seq_is_detected_and_prompted_raw(tmp_path, tiny_tokenizer_dir):
    from detox.rewrite.model import ModelConfig
    from detox.rewrite.rewriters import LM, resolve_format

    t5_dir = _tiny_t5(tmp_path / "t5", tiny_tokenizer_dir)
    lm = LM(ModelConfig(model=str(t5_dir)))
    assert lm.seq2seq and resolve_format("auto", lm) == "raw"
    assert lm.tokenizer.padding_side == "right"
    got = lm.generate(["detox: you idiot", "detox: go"], max_new_tokens=4, n=2,
                      sampling={"temperature": 1.0, "top_p": 1.0})
    assert len(got) == 2 and all(len(g) == 2 for g in got)
    assert [len(g) for g in lm.generate(["detox: go"], max_new_tokens=4)] == [1]


class _WordTokenizer:
    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [t.split() for t in texts]}


class _RecordingLM:
    """Stands in for LM: echoes each prompt upper-cased and records the batches it was given."""

    tokenizer = _WordTokenizer()

    def __init__(self):
        self.calls = []

    def generate(self, prompts, max_new_tokens, *, n=1, sampling=None, stop_at_newline=False,
                 add_special_tokens=True, ids=None):
        self.calls.append(list(prompts))
        return [[p.upper()] * n for p in prompts]


def test_prompts_are_batched_by_length_and_returned_in_input_order():
    from types import SimpleNamespace

    from detox.rewrite.rewriters import Item, PromptRewriter

    builder = SimpleNamespace(fmt="plain", cfg=SimpleNamespace(first_line=True),
                              clean=str.strip, build=lambda text, context, demos: text)
    lm = _RecordingLM()
    rewriter = PromptRewriter(lm, builder, max_new_tokens=4, batch_size=2)
    texts = ["e e e e e", "a", "c c c", "b b", "d d d d"]
    got = rewriter.rewrite([Item(t) for t in texts])
    assert [r.text for r in got] == [t.upper() for t in texts]  # input order
    # shortest first, so each batch pads to a length close to its own prompts'
    assert lm.calls == [["a", "b b"], ["c c c", "d d d d"], ["e e e e e"]]
