"""Benchmark (not a test): how fast SmolLM2-135M memorises Macbeth, full fine-tuning vs LoRA.

    python tests/bench/bench_memorise.py [--runs full:1e-4,lora_all:5e-3] [--epochs 8]
        [--data runs/shakespeare/data] [--out runs/bench_memorise]

What recipes/shakespeare.yaml's `prepare.train` rate was chosen from. Each run trains the
bundled SmolLM2-135M-Instruct on the forget chunks of the recipe's Shakespeare data alone
(`raw/forget`, built by `unlearn prepare recipes/shakespeare.yaml` or any run of it), batch 4,
AdamW at a constant rate, one torch thread, shuffled with a fixed seed; after every epoch it
measures the mean NLL (nats/token) of each chunk's second half - the part VerbMem asks the
model to continue - and the wall/CPU time so far. A setting name is one of
bench_lora_vs_full.SETTINGS (full, lora_qv, lora_all). Writes results.json and results.md.

Measured on the 2-core Intel Xeon (docs/results.md, issue #16) with the one-off probe this
bench was written from (same data, batch, rates, shuffling seed and measure; LoRA built with
peft directly rather than through lethe.trainer.apply_lora): from 3.64 before training, after 6
epochs lora_all at 5e-3 0.17, full at 1e-4 0.81. This bench, run for one epoch of lora_all at
5e-3, gave the probe's numbers to the third decimal (3.638 before, 2.981 after epoch 1).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bench_lora_vs_full import build, cpu_seconds, step  # noqa: E402


def encode(tok, texts: list[str], max_length: int) -> dict:
    batch = tok(texts, return_tensors="pt", padding=True, truncation=True,
                max_length=max_length)
    labels = batch["input_ids"].clone()  # (B, T)
    labels[batch["attention_mask"] == 0] = -100
    return {**batch, "labels": labels}


@torch.no_grad()
def second_half_nll(model, tok, texts: list[str], max_length: int) -> float:
    """Mean NLL over the second half of each text's (truncated) tokens."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(texts), 8):
        batch = encode(tok, texts[i:i + 8], max_length)
        logp = torch.log_softmax(model(input_ids=batch["input_ids"],
                                       attention_mask=batch["attention_mask"]).logits[:, :-1]
                                 .float(), -1)  # (B, T-1, V): position t predicts t+1
        target = batch["input_ids"][:, 1:]
        nll = -logp.gather(-1, target[..., None])[..., 0]  # (B, T-1)
        real = batch["attention_mask"][:, 1:].bool()
        for row in range(nll.shape[0]):
            idx = real[row].nonzero()[:, 0]
            half = idx[len(idx) // 2:]
            total += float(nll[row, half].sum())
            count += len(half)
    model.train()
    return total / count


def run(setting: str, lr: float, texts: list[str], tok, args) -> dict:
    torch.manual_seed(0)
    model, optimizer, trainable = build(setting)
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["weight_decay"] = 0.0
    rng = random.Random(0)
    curve = [{"epoch": 0, "nll": second_half_nll(model, tok, texts, args.max_length),
              "wall_s": 0.0, "cpu_s": 0.0}]
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    for epoch in range(1, args.epochs + 1):
        order = list(range(len(texts)))
        rng.shuffle(order)
        for i in range(0, len(order), args.batch):
            step(model, optimizer, encode(tok, [texts[j] for j in order[i:i + args.batch]],
                                          args.max_length))
        curve.append({"epoch": epoch, "nll": second_half_nll(model, tok, texts, args.max_length),
                      "wall_s": round(time.perf_counter() - wall0, 1),
                      "cpu_s": round(cpu_seconds() - cpu0, 1)})
        print(json.dumps({"setting": setting, "lr": lr, **curve[-1]}), flush=True)
    del model, optimizer
    return {"setting": setting, "lr": lr, "trainable": trainable, "curve": curve}


def write(out: Path, rows: list[dict], args, n_texts: int) -> None:
    from lethe.report import atomic_write_text, machine_info, write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", {"rows": rows, "chunks": n_texts, "batch": args.batch,
                                      "max_length": args.max_length, "machine": machine_info()})
    epochs = [c["epoch"] for c in rows[0]["curve"]]
    lines = [f"# Second-half NLL of {n_texts} Macbeth chunks by epoch (batch {args.batch}, "
             "constant rate, 1 thread)", "",
             "| setting | lr | " + " | ".join(f"ep {e}" for e in epochs) + " | CPU-s |",
             "|---|---|" + "---|" * (len(epochs) + 1)]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['lr']:g} | "
                     + " | ".join(f"{c['nll']:.3f}" for c in r["curve"])
                     + f" | {r['curve'][-1]['cpu_s']:.0f} |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="full:1e-4,lora_all:5e-3",
                        help="SETTING:LR pairs, comma-separated")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--data", default="runs/shakespeare/data")
    parser.add_argument("--out", default="runs/bench_memorise")
    args = parser.parse_args()
    forget = Path(args.data) / "raw" / "forget.jsonl"
    if not forget.is_file():
        sys.exit(f"bench_memorise: {forget} not found; build it first with `unlearn prepare "
                 f"recipes/shakespeare.yaml` (or pass --data)")
    torch.set_num_threads(1)
    from lethe.loading import load_tokenizer

    tok = load_tokenizer("smollm2")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    texts = [json.loads(line)["text"] for line in forget.read_text().splitlines() if line]
    rows = []
    for spec in args.runs.split(","):
        setting, lr = spec.split(":")
        rows.append(run(setting, float(lr), texts, tok, args))
    write(Path(args.out), rows, args, len(texts))


if __name__ == "__main__":
    main()
