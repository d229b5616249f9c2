"""Benchmark: MUSE's metric code / `unlearn eval` on a prepared model (not a timed test).

    python tests/bench/bench_muse_ratio.py [--model runs/demo/models/target]
        [--world runs/demo/world] [--batch-size 32] [--threads 1] [--repeats 3]

Times the same four MUSE numbers (VerbMem_f, KnowMem_f, PrivLeak, KnowMem_r) two ways on one
model and one world:

1. `eval.muse.evaluate_models` at `--batch-size` (what `unlearn eval` and the evaluation after
   `unlearn run` call in-process; recipes/demo.yaml evaluates at batch 32), best of
   `--repeats` after a warm-up;
2. the MUSE-style loop of tests/bench/bench_eval_batching.py (one `model.generate` per prompt,
   one forward per text and one per lowercased text, `.item()` per token), written after
   MUSE's reference scripts.

It checks that both give the same numbers and outputs, then prints each metric's time and
two ratios, MUSE-style / ours: KnowMem (forget + retain) and the whole suite, in CPU time of
this process (the steadier figure on a shared machine; with one torch thread it is what the
wall time would be on an idle one) and wall time. Target: >= 8x for the suite (issue #17).
Without a prepared model (`unlearn run recipes/demo.yaml` writes runs/demo/models/target) it
falls back to bench_eval_batching's random Llama on a generated world and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

KNOWMEM = ("knowmem_f", "knowmem_r")


def load(args, tmp: Path):
    """(model, tokenizer, world dir, what they are)."""
    model_dir, world = Path(args.model), Path(args.world)
    if model_dir.is_dir() and world.is_dir():
        from lethe.lm import load_for_inference
        from lethe.loading import load_tokenizer

        return (load_for_inference(str(model_dir), device="cpu"), load_tokenizer(str(model_dir)),
                world, f"{model_dir} on {world}")
    import bench_eval_batching as b

    print(f"no prepared model at {model_dir} (or world at {world}): using a random Llama 4x128 "
          f"on a generated demo world instead")
    world, name = b.make_world("demo", tmp)
    tok = b.make_tokenizer(world, 2048)
    model = b.make_model(tok, 4, 128)
    b.train(model, tok, world, 60)
    return model, tok, world, f"random Llama 4x128 (60 steps) on {name}"


def ours(model, tok, world: Path, batch_size: int, metrics=None):
    """(values, outputs, (wall, cpu) seconds of the call)."""
    from eval.muse import SuiteSettings, evaluate_models

    start, cpu = time.perf_counter(), time.process_time()
    r = evaluate_models([("bench", model, tok, {})], str(world), metrics, retrain_auc=0.5,
                        settings=SuiteSettings(batch_size=batch_size, progress=False))
    took = (time.perf_counter() - start, time.process_time() - cpu)
    scores = r["models"][0]["scores"]
    return ({k: v["value"] for k, v in scores.items()},
            {k: v["meta"].get("outputs", v["per_example"]) for k, v in scores.items()}, took)


def report(t_ours: dict, took_ours, t_muse: dict, took_muse) -> None:
    print(f"{'metric':10s} {'ours (cpu s)':>12s} {'MUSE-style (cpu s)':>19s} {'ratio':>7s}")
    for k in t_muse:
        print(f"{k:10s} {t_ours[k]:12.2f} {t_muse[k]:19.2f} {t_muse[k] / t_ours[k]:6.1f}x")
    km_ours, km_muse = sum(t_ours[k] for k in KNOWMEM), sum(t_muse[k] for k in KNOWMEM)
    print(f"RATIO KnowMem MUSE-style / ours = {km_muse / km_ours:.1f}x "
          f"({km_muse:.2f} s / {km_ours:.2f} s)")
    print(f"RATIO suite MUSE-style / ours = {took_muse[1] / took_ours[1]:.1f}x cpu "
          f"({took_muse[1]:.2f} s / {took_ours[1]:.2f} s), "
          f"{took_muse[0] / took_ours[0]:.1f}x wall ({took_muse[0]:.2f} s / {took_ours[0]:.2f} s)"
          f" (target >= 8x)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(REPO / "runs" / "demo" / "models" / "target"))
    p.add_argument("--world", default=str(REPO / "runs" / "demo" / "world"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: steady on a shared machine; 0: torch's choice)")
    p.add_argument("--repeats", type=int, default=3, help="runs of ours (the fastest is kept)")
    args = p.parse_args(argv)

    import torch

    import bench_eval_batching as b

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, world, what = load(args, Path(tmp))
        print(f"{what}; batch {args.batch_size}; torch threads {torch.get_num_threads()}")
        ours(model, tok, world, args.batch_size)  # warm-up: imports, caches, first calls
        runs = [ours(model, tok, world, args.batch_size) for _ in range(args.repeats)]
        values, outputs, took = min(runs, key=lambda r: r[2][1])
        # each metric alone (its CPU time, fastest of the repeats) for the per-metric table
        t_ours = {k: min(ours(model, tok, world, args.batch_size, [k])[2][1]
                         for _ in range(args.repeats)) for k in values}
        t_muse = {}
        start, cpu = time.perf_counter(), time.process_time()
        muse, m_outputs = b.muse_style(model, tok, world, 0.4, 0.5, times=t_muse)
        took_muse = (time.perf_counter() - start, time.process_time() - cpu)
    same = b.agree(values, muse, outputs, m_outputs)
    print(f"ours:       {values}\nMUSE-style: {muse}\nsame numbers and outputs: {same}")
    report(t_ours, took, t_muse, took_muse)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
