"""Batched vs one-at-a-time `detox rewrite`, and the same prompts through a plain batched loop.

    python tests/bench/bench_detox_batching.py [--rows 32] [--batch 16] [--threads 1]

Offline default model (SmolLM2-135M-Instruct, fp32, greedy, 48 new tokens) with the default
few-shot recipe (4 most-similar demonstrations from the bundled pool). Inputs: ParaDetox rows
8893+ from ../shared/data when present, else examples/input.jsonl repeated with numbered
variants. Three runs on the same inputs, in one process:
  1. `detox rewrite` (the CLI command, in-process) with generation.batch_size=B;
  2. `detox rewrite` with generation.batch_size=1;
  3. a plain loop: the same prompts, tokenizer + model.generate in batches of B, decode.
Runs 1 and 2 are end-to-end (model loads, demo retrieval, JSON writing, fsync included); run 3
includes its model load. Prints rows/s, the ratio 1/2 (target >= 4x), the overhead of 1 over 3
(target <= 5%), and whether the three give identical rewrites. Writes results.json/results.md
under runs/bench/detox_batching/.
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
        from detox.fewshot import read_rows

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


def run_cli(inp: Path, out: Path, batch: int) -> tuple[float, list[str]]:
    from detox.cli.rewrite import rewrite

    out.unlink(missing_ok=True)
    start = time.perf_counter()
    rewrite.main(args=[str(inp), "-o", str(out), "--set", f"generation.batch_size={batch}"],
                 standalone_mode=False)
    seconds = time.perf_counter() - start
    return seconds, [json.loads(x)["rewrite"] for x in out.open()]


def run_plain(inp: Path, batch: int) -> tuple[float, list[str]]:
    """The reference: prompts built beforehand (not timed), then load + generate + decode."""
    import torch

    from detox.cli.rewrite import load_rewrite_recipe
    from detox.fewshot import PromptBuilder
    from detox.rewriters import make_selector
    from lethe.loading import load_model, load_tokenizer

    recipe = load_rewrite_recipe(None)
    cfg = recipe.rewriter
    texts = [json.loads(x)["text"] for x in inp.open()]
    tok = load_tokenizer(cfg.model, padding_side="left")
    demos = make_selector(cfg).select(texts)
    builder = PromptBuilder(cfg.prompt, tok, "chat")
    prompts = [builder.build(t, (), d) for t, d in zip(texts, demos)]
    start = time.perf_counter()
    model = load_model(cfg.model, dtype=cfg.dtype).eval()
    tok = load_tokenizer(cfg.model, padding_side="left")
    outs = []
    for i in range(0, len(prompts), batch):
        enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=recipe.generation.max_new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        outs += [builder.clean(t) for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:],
                                                            skip_special_tokens=True)]
    return time.perf_counter() - start, outs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "detox_batching"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on this shared 2-core machine two OpenMP threads "
                         "ran SmolLM2 generation 8-10x slower than one)")
    args = ap.parse_args()
    from eval.report import atomic_write_text, library_versions, markdown_table, write_json

    import torch

    torch.set_num_threads(args.threads)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    inp = out_dir / "input.jsonl"
    source = make_input(inp, args.rows)
    print(f"{args.rows} rows ({source}), batch {args.batch}, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    t_batch, o_batch = run_cli(inp, out_dir / f"batch{args.batch}.jsonl", args.batch)
    print(f"detox rewrite, batch {args.batch}: {t_batch:.1f} s", flush=True)
    t_plain, o_plain = run_plain(inp, args.batch)
    print(f"plain loop, batch {args.batch}: {t_plain:.1f} s", flush=True)
    t_one, o_one = run_cli(inp, out_dir / "batch1.jsonl", 1)
    print(f"detox rewrite, batch 1: {t_one:.1f} s", flush=True)

    n = args.rows
    ratio = t_one / t_batch
    overhead = t_batch / t_plain - 1
    same = o_batch == o_one == o_plain
    differ = sum(a != b for a, b in zip(o_batch, o_one))
    rows = [[f"detox rewrite, batch {args.batch}", t_batch, n / t_batch],
            ["detox rewrite, batch 1", t_one, n / t_one],
            [f"plain generate loop, batch {args.batch}", t_plain, n / t_plain]]
    table = markdown_table(["run", "seconds", "rows/s"], rows)
    summary = (f"batched / one-at-a-time: {ratio:.2f}x (target >= 4x); detox rewrite vs plain "
               f"loop: {overhead * 100:+.1f}% time (target <= 5%); identical greedy outputs: "
               f"{same} ({differ} of {n} differ between batch {args.batch} and batch 1)")
    write_json(out_dir / "results.json", {
        "rows": n, "input": source, "batch": args.batch, "threads": torch.get_num_threads(),
        "seconds": {"cli_batch": t_batch, "cli_one": t_one, "plain_batch": t_plain},
        "ratio_batched_vs_one": ratio, "overhead_vs_plain": overhead, "identical": same,
        "n_differ": differ, "versions": library_versions()})
    atomic_write_text(out_dir / "results.md", f"# detox rewrite batching ({source})\n\n{table}"
                                              f"\n{summary}\n")
    print(table + summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
