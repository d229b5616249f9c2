"""Batched vs one-at-a-time `detox rewrite`, and the same prompts through a plain batched loop.

    python tests/bench/bench_detox_batching.py [--rows 64] [--batch 32] [--window 64]
                                               [--threads 1] [--set rewriter.k=0 ...]

Offline default model (SmolLM2-135M-Instruct, fp32, greedy, 48 new tokens) with the default
recipe (4 most-similar demonstrations from the bundled pool, instruction) unless `--set` says
otherwise. Inputs: ParaDetox rows 8893+ from ../shared/data when present, else
examples/input.jsonl repeated with numbered variants. In one process, after the rewriter is
built (model + MiniLM loaded: the start-up time is reported apart):
  A. `detox rewrite`'s own streaming loop (detox.cli.rewrite.stream: read JSONL, retrieve
     demonstrations, build prompts, sort a window of W by prompt length, generate in batches
     of B, JSON + flush + fsync per window);
  P. a plain loop over the same prompts (built beforehand, untimed) in input order:
     tokenizer + generate + decode in batches of B (no length sorting);
  1. the streaming loop with batch 1 (window 1).
The order is A, P, 1, P, A: symmetric, so a steady drift in the load of a shared machine
cancels in the averages of A and of P. Prints rows/s, the
ratio A/1 (target >= 3x), the time of A over P (target <= +5%), and whether all runs give
identical rewrites. Writes results.json/results.md under runs/bench/detox_batching[-TAG]/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = ROOT.parent / "shared" / "data" / "paradetox_dev.tsv"


def make_input(path: Path, rows: int) -> str:
    if DATA.is_file():
        from detox.rewrite.fewshot import read_rows

        texts = [r["toxic"] for r in read_rows(DATA)[8893:8893 + rows]]
        source = f"ParaDetox rows 8893-{8893 + rows - 1}"
    else:
        base = [json.loads(x)["text"] for x in (ROOT / "examples" / "input.jsonl").open()]
        texts = [base[i % len(base)] + ("" if i < len(base) else f" ({i // len(base)})")
                 for i in range(rows)]
        source = "examples/input.jsonl, repeated"
    with path.open("w", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": i, "text": t}) + "\n")
    return source


def run_stream(rewriter, inp: Path, out: Path, batch: int,
               window: int) -> tuple[float, list[str]]:
    from detox import io
    from detox.cli.rewrite import stream

    out.unlink(missing_ok=True)
    rewriter.batch_size = batch
    start = time.perf_counter()
    with io.JsonlWriter(out) as writer:
        stream(rewriter, io.records(inp), writer, window, total=sum(1 for _ in inp.open()))
    seconds = time.perf_counter() - start
    return seconds, [json.loads(x)["rewrite"] for x in out.open()]


def run_plain(lm, builder, prompts: list[str], batch: int, max_new_tokens: int):
    import torch

    tok, model = lm.tokenizer, lm.model
    start = time.perf_counter()
    outs = []
    for i in range(0, len(prompts), batch):
        enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        outs += [builder.clean(t) for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:],
                                                            skip_special_tokens=True)]
    return time.perf_counter() - start, outs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--window", type=int, default=64, help="generation.window of run A")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on this shared 2-core machine two OpenMP threads "
                         "ran SmolLM2 generation 8-10x slower than one)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="recipe override, e.g. rewriter.k=0 (repeatable)")
    ap.add_argument("--tag", default="", help="suffix of the output directory")
    args = ap.parse_args()
    import torch

    from detox.rewrite.recipe import load_rewrite_recipe
    from detox.rewrite.rewriters import build_rewriter
    from lethe.report import (atomic_write_text, library_versions, machine_info, markdown_table,
                             write_json)

    torch.set_num_threads(args.threads)
    out_dir = ROOT / "runs" / "bench" / ("detox_batching" + (f"-{args.tag}" if args.tag else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    inp = out_dir / "input.jsonl"
    source = make_input(inp, args.rows)
    recipe = load_rewrite_recipe(None, args.overrides)
    print(f"{args.rows} rows ({source}), batch {args.batch}, window {args.window}, torch threads "
          f"{torch.get_num_threads()}, overrides {args.overrides}", flush=True)
    t0 = time.perf_counter()
    rewriter = build_rewriter(recipe.rewriter, recipe)
    startup = time.perf_counter() - t0
    texts = [json.loads(x)["text"] for x in inp.open()]
    from detox.rewrite.rewriters import Item

    prompts = rewriter.prompts([Item(t) for t in texts])
    plen = [len(rewriter.lm.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    b, w = args.batch, args.window

    def padded(lengths):  # tokens a left-padded batch computes, summed over batches of b
        return sum(max(lengths[i:i + b]) * len(lengths[i:i + b]) for i in range(0, len(lengths), b))

    pad_input = padded(plen) / sum(plen)
    pad_sorted = sum(padded(sorted(plen[i:i + w])) for i in range(0, len(plen), w)) / sum(plen)
    print(f"start-up (model loads, pool index): {startup:.1f} s; prompt tokens: mean "
          f"{sum(plen) / len(plen):.0f}, min {min(plen)}, max {max(plen)}; prefill tokens "
          f"computed / real: {pad_input:.2f} in input order, {pad_sorted:.2f} sorted", flush=True)
    runs = []

    def record(name, seconds, outs):
        runs.append((name, seconds, outs))
        print(f"{name}: {seconds:.1f} s ({args.rows / seconds:.3f} rows/s)", flush=True)

    mnt = recipe.generation.max_new_tokens
    record(f"A: detox rewrite stream, batch {args.batch}, window {args.window}",
           *run_stream(rewriter, inp, out_dir / "a.jsonl", args.batch, args.window))
    record(f"P: plain generate loop, batch {args.batch}",
           *run_plain(rewriter.lm, rewriter.builder, prompts, args.batch, mnt))
    record("1: detox rewrite stream, batch 1",
           *run_stream(rewriter, inp, out_dir / "one.jsonl", 1, 1))
    record("P (repeat)", *run_plain(rewriter.lm, rewriter.builder, prompts, args.batch, mnt))
    record("A (repeat)", *run_stream(rewriter, inp, out_dir / "a2.jsonl", args.batch, args.window))

    t = {name.split(":")[0].split(" ")[0] + ("2" if "repeat" in name else ""): s
         for name, s, _ in runs}
    a, p, one = (t["A"] + t["A2"]) / 2, (t["P"] + t["P2"]) / 2, t["1"]
    outs = [o for _, _, o in runs]
    same = all(o == outs[0] for o in outs)
    differ = sum(x != y for x, y in zip(outs[0], outs[2]))
    table = markdown_table(["run", "seconds", "rows/s"],
                           [[name, s, args.rows / s] for name, s, _ in runs], digits=3)
    summary = (f"batched / one-at-a-time: {one / a:.2f}x (target >= 3x); plain batched loop / "
               f"one-at-a-time: {one / p:.2f}x; detox rewrite vs plain loop: "
               f"{(a / p - 1) * 100:+.1f}% time (target <= +5%); identical greedy outputs in "
               f"all runs: {same} ({differ} of {args.rows} differ between batch {args.batch} "
               f"and batch 1); start-up {startup:.1f} s; prompt tokens mean "
               f"{sum(plen) / len(plen):.0f}; prefill padding: {pad_input:.2f}x in input "
               f"order, {pad_sorted:.2f}x sorted")
    write_json(out_dir / "results.json", {
        "rows": args.rows, "input": source, "batch": args.batch, "window": args.window,
        "overrides": args.overrides,
        "threads": torch.get_num_threads(), "startup_s": startup,
        "prompt_tokens_mean": sum(plen) / len(plen), "prefill_padding_input_order": pad_input,
        "prefill_padding_sorted": pad_sorted, "seconds": {n: s for n, s, _ in runs},
        "ratio_batched_vs_one": one / a, "ratio_plain_vs_one": one / p,
        "overhead_vs_plain": a / p - 1, "identical": same, "n_differ": differ,
        "versions": library_versions(), "machine": machine_info()})
    atomic_write_text(out_dir / "results.md", f"# detox rewrite batching ({source}, "
                                              f"{' '.join(args.overrides) or 'default recipe'})"
                                              f"\n\n{table}\n{summary}\n")
    print(table + summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
