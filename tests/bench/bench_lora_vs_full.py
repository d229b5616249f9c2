"""Benchmark (not a test): training throughput of SmolLM2-135M, full fine-tuning vs LoRA.

    python tests/bench/bench_lora_vs_full.py [--threads 1,2] [--steps 3] [--batch 4]
        [--length 256] [--out runs/bench_lora_vs_full]

What `unlearn prepare` pays per optimizer step on this CPU when it fine-tunes the bundled
SmolLM2-135M-Instruct (`smollm2`) on Shakespeare: one AdamW step (forward, backward, update)
over a batch of `--batch` rows of `--length` tokens of real play text, for

- full: every parameter trains (AdamW state for 135M parameters; the weight gradient of the
  tied 49,152 x 576 embedding / LM head every step),
- lora_qv: LoRA r=8 on q_proj, v_proj (peft; Lethe's default `lora:` section),
- lora_all: LoRA r=16 on every linear layer of the blocks (q, k, v, o, gate, up, down).

Each setting runs with 1 and 2 torch threads, after one warm-up step. Reported per setting:
wall seconds per step, tokens/s (wall), tokens per CPU-second (process user+sys time over the
timed steps: on a shared machine this is what the step costs, whatever else runs), and the
load average while it ran. Writes results.json and results.md to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

SETTINGS = {
    "full": None,
    "lora_qv": dict(r=8, alpha=16, target_modules=("q_proj", "v_proj")),
    "lora_all": dict(r=16, alpha=32, target_modules=("q_proj", "k_proj", "v_proj", "o_proj",
                                                     "gate_proj", "up_proj", "down_proj")),
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def batch_of_text(tokenizer, rows: int, length: int) -> dict:
    """`rows` x `length` tokens of Macbeth, consecutive windows (real text, no padding)."""
    from unlearn.shakespeare import read_play

    ids = tokenizer(read_play("macbeth"))["input_ids"]
    need = rows * length
    ids = torch.tensor(ids[5000:5000 + need]).view(rows, length)  # (B, T)
    return {"input_ids": ids, "labels": ids.clone()}


def build(setting: str):
    from lethe.loading import load_model
    from lethe.trainer import LoraSection, apply_lora

    model = load_model("smollm2", dtype="float32")
    lora = SETTINGS[setting]
    if lora is not None:
        model = apply_lora(model, LoraSection(r=lora["r"], alpha=lora["alpha"],
                                              target_modules=lora["target_modules"]))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.AdamW(trainable, lr=1e-5), sum(p.numel() for p in trainable)


def step(model, optimizer, batch) -> float:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def measure(setting: str, threads: int, batch: dict, steps: int) -> dict:
    torch.set_num_threads(threads)
    model, optimizer, trainable = build(setting)
    step(model, optimizer, batch)  # warm-up: allocator, AdamW state
    walls = []
    load0 = os.getloadavg()[0]
    cpu0 = cpu_seconds()
    for _ in range(steps):
        start = time.perf_counter()
        step(model, optimizer, batch)
        walls.append(time.perf_counter() - start)
    cpu = cpu_seconds() - cpu0
    tokens = batch["input_ids"].numel()
    del model, optimizer
    return {"setting": setting, "threads": threads, "trainable": trainable,
            "step_s": statistics.median(walls), "step_s_all": [round(w, 2) for w in walls],
            "tokens_per_s": tokens / statistics.median(walls),
            "tokens_per_cpu_s": tokens * steps / cpu, "cpu_s_per_step": cpu / steps,
            "load_avg": round((load0 + os.getloadavg()[0]) / 2, 2)}


def write(out: Path, rows: list[dict], args) -> None:
    from lethe.report import machine_info, write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", {"rows": rows, "batch": args.batch, "length": args.length,
                                      "steps": args.steps, "machine": machine_info()})
    lines = [f"# SmolLM2-135M training throughput, batch {args.batch} x {args.length} tokens",
             "", "| setting | threads | trainable | s/step (wall) | tokens/s (wall) | "
             "tokens per CPU-s | CPU-s/step | load avg |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['threads']} | {r['trainable'] / 1e6:.2f}M | "
                     f"{r['step_s']:.1f} | {r['tokens_per_s']:.0f} | "
                     f"{r['tokens_per_cpu_s']:.0f} | {r['cpu_s_per_step']:.1f} | "
                     f"{r['load_avg']} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--out", default="runs/bench_lora_vs_full")
    args = parser.parse_args()
    from lethe.loading import load_tokenizer

    batch = batch_of_text(load_tokenizer("smollm2"), args.batch, args.length)
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        for setting in args.settings.split(","):
            rows.append(measure(setting, threads, batch, args.steps))
            print(json.dumps(rows[-1]), flush=True)
    write(Path(args.out), rows, args)


if __name__ == "__main__":
    main()
