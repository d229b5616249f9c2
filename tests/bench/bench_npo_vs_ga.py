"""Benchmark (not a test): what NPO's reference costs per step, against gradient ascent.

    python tests/bench/bench_npo_vs_ga.py [--steps 20] [--threads 1] [--out runs/bench_npo_vs_ga]

Model: the demo size, built in memory — Llama, hidden 128, 4 layers, 4 heads, intermediate 512,
vocab 2048 — on random token batches of 8 × 128 (forget and retain).

1. Step time (full fine-tuning, AdamW): GA vs NPO with reference log-probs cached once by
   `precompute_ref_logp` vs NPO with a reference forward every step (open-unlearning style; here
   a frozen copy through `Reference`). The variants take turns within each round on the same
   batch; the ratio is the median over rounds of the paired per-round ratios (IQR beside it).
2. Peak memory with LoRA (r=8 on q,v): GA vs NPO with cached log-probs (and, for contrast, NPO
   with a per-step adapters-disabled reference forward). Measured as the peak RSS increase over
   the step: Linux's VmHWM is reset through /proc/self/clear_refs before the step and read after
   it, relative to VmRSS before. glibc is told (mallopt) to serve allocations above 64 KiB with
   mmap and to trim eagerly, so freed tensors leave RSS and every step's peak is its own.
   tracemalloc cannot be used: it does not see torch's tensor allocations.

Writes results.json and results.md to --out.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from unlearn.data import LMCollator, PairedCollator, PairedDataset  # noqa: E402
from unlearn.methods import get_method  # noqa: E402
from unlearn.methods.reference import make_reference, precompute_ref_logp  # noqa: E402

DEMO = dict(vocab_size=2048, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=4, intermediate_size=512, max_position_embeddings=256)
BATCH, SEQ = 8, 128


def demo_model(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**DEMO)).train()


def examples(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, DEMO["vocab_size"], (n, SEQ), generator=g)
    return [{"input_ids": row.tolist()} for row in ids]


def batches(forget, retain, rounds: int):
    ds = PairedDataset(forget, retain)
    collate = PairedCollator(0)
    for r in range(rounds):
        idx = [(r * BATCH + i) % len(ds) for i in range(BATCH)]
        yield collate([ds[i] for i in idx])


def drop_ref_logp(batch):
    return {side: {k: v for k, v in part.items() if k != "ref_logp"}
            for side, part in batch.items()}


def step(model, opt, loss_fn, batch):
    opt.zero_grad(set_to_none=True)
    loss, _ = loss_fn(model, batch)
    loss.backward()
    opt.step()


def quartiles(xs):
    q = statistics.quantiles(xs, n=4)
    return {"median": statistics.median(xs), "q1": q[0], "q3": q[2]}


# ---------------------------------------------------------------------------------------------
# memory


def malloc_release_eagerly() -> bool:
    """glibc: mmap allocations ≥ 64 KiB and trim freed heap at once (so RSS follows tensors)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_delta_mb(fn) -> float:
    """Peak RSS increase (MiB) while fn() runs: VmHWM reset via clear_refs, minus VmRSS before."""
    gc.collect()
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark
    fn()
    return (_status_kb("VmHWM") - before) / 1024


# ---------------------------------------------------------------------------------------------


def bench_time(forget, retain, rounds: int, warmup: int) -> dict:
    ga, npo = get_method("ga"), get_method("npo")
    ga_cfg, npo_cfg = ga.config_cls(), npo.config_cls()
    models = {name: demo_model() for name in ("ga", "npo_cached", "npo_per_step_ref")}
    t0 = time.perf_counter()
    cached = precompute_ref_logp(models["npo_cached"], forget, LMCollator(0), batch_size=BATCH)
    precompute_s = time.perf_counter() - t0
    # per-step reference: a frozen copy of the starting weights, as a trainer without a cache
    ref = make_reference(models["npo_per_step_ref"], get_method("npo_klr"), lora_enabled=False)
    loss_fns = {
        "ga": lambda m, b: ga.loss(m, b, ga_cfg, None),
        "npo_cached": lambda m, b: npo.loss(m, b, npo_cfg, None),
        "npo_per_step_ref": lambda m, b: npo.loss(m, drop_ref_logp(b), npo_cfg, ref),
    }
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-5) for k, m in models.items()}
    times = {k: [] for k in models}
    for r, batch in enumerate(batches(cached, retain, warmup + rounds)):
        order = list(models) if r % 2 == 0 else list(reversed(models))  # alternate who goes first
        for name in order:
            t = time.perf_counter()
            step(models[name], opts[name], loss_fns[name], batch)
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
    ratio = {k: quartiles([a / g for a, g in zip(times[k], times["ga"])])
             for k in ("npo_cached", "npo_per_step_ref")}
    return {"step_s": {k: statistics.median(v) for k, v in times.items()}, "ratio_to_ga": ratio,
            "precompute_ref_logp_s": precompute_s, "precompute_examples": len(forget)}


def bench_memory(forget, retain, rounds: int, warmup: int) -> dict:
    from lethe.trainer import LoraSection, apply_lora

    ga, npo = get_method("ga"), get_method("npo")
    ga_cfg, npo_cfg = ga.config_cls(), npo.config_cls()
    lora = LoraSection(r=8, alpha=16)
    models = {name: apply_lora(demo_model(), lora)
              for name in ("ga", "npo_cached", "npo_per_step_ref")}
    cached = precompute_ref_logp(models["npo_cached"], forget, LMCollator(0), batch_size=BATCH)
    ref = make_reference(models["npo_per_step_ref"], get_method("npo_klr"), lora_enabled=True)
    loss_fns = {
        "ga": lambda m, b: ga.loss(m, b, ga_cfg, None),
        "npo_cached": lambda m, b: npo.loss(m, b, npo_cfg, None),
        "npo_per_step_ref": lambda m, b: npo.loss(m, drop_ref_logp(b), npo_cfg, ref),
    }
    opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for k, m in models.items()}
    peaks = {k: [] for k in models}
    for r, batch in enumerate(batches(cached, retain, warmup + rounds)):
        for name in (list(models) if r % 2 == 0 else list(reversed(models))):
            mb = peak_rss_delta_mb(lambda: step(models[name], opts[name], loss_fns[name], batch))
            if r >= warmup:
                peaks[name].append(mb)
    ratio = {k: quartiles([a / g for a, g in zip(peaks[k], peaks["ga"])])
             for k in ("npo_cached", "npo_per_step_ref")}
    return {"peak_rss_delta_mb": {k: statistics.median(v) for k, v in peaks.items()},
            "ratio_to_ga": ratio}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="paired rounds measured")
    ap.add_argument("--warmup", type=int, default=3, help="rounds run before measuring")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: stable timings on a shared CPU)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_npo_vs_ga"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    eager = malloc_release_eagerly()
    forget, retain = examples(64, seed=1), examples(64, seed=2)

    timing = bench_time(forget, retain, args.steps, args.warmup)
    memory = bench_memory(forget, retain, args.steps, args.warmup)
    result = {
        "benchmark": "npo_vs_ga",
        "model": {"arch": "LlamaForCausalLM", **DEMO},
        "batch": [BATCH, SEQ], "rounds": args.steps, "warmup": args.warmup,
        "threads": args.threads, "device": "cpu", "malloc_mmap_threshold_set": eager,
        "memory_method": "peak RSS delta per step: /proc/self/clear_refs (5) resets VmHWM; "
                         "VmHWM after minus VmRSS before",
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "time": timing, "memory_lora": memory,
        "targets": {"npo_cached_time_ratio_max": 1.10, "npo_cached_lora_memory_ratio_max": 1.10},
    }
    t, m = timing["ratio_to_ga"], memory["ratio_to_ga"]
    rows = [
        ("NPO (cached ref log-probs) / GA, step time", t["npo_cached"], "≤ 1.10"),
        ("NPO (reference forward every step) / GA, step time", t["npo_per_step_ref"], "—"),
        ("NPO+LoRA (cached) / GA+LoRA, peak RSS delta", m["npo_cached"], "≤ 1.10"),
        ("NPO+LoRA (adapters-off ref every step) / GA+LoRA, peak RSS delta",
         m["npo_per_step_ref"], "—"),
    ]
    md = ["# NPO vs GA: cost of the reference", "",
          f"Demo-size Llama (hidden 128, 4 layers, vocab 2048), batch {BATCH}×{SEQ}, CPU, "
          f"{args.threads} thread(s); paired medians over {args.steps} rounds "
          f"(after {args.warmup} warm-up).", "",
          "| ratio | median | IQR | target |", "|---|---|---|---|"]
    md += [f"| {name} | {q['median']:.3f} | {q['q1']:.3f}–{q['q3']:.3f} | {target} |"
           for name, q, target in rows]
    md += ["", f"Step time (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                     timing["step_s"].items()),
           f"Peak RSS delta per LoRA step (median MiB): " + ", ".join(
               f"{k} {v:.1f}" for k, v in memory["peak_rss_delta_mb"].items()),
           f"One-off precompute_ref_logp for {len(forget)} examples: "
           f"{timing['precompute_ref_logp_s']:.2f} s.",
           "", "Memory: " + result["memory_method"] + "."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(result, indent=2) + "\n"),
                       ("results.md", "\n".join(md) + "\n")):
        with tempfile.NamedTemporaryFile("w", dir=out, delete=False, suffix=".tmp") as fh:
            fh.write(text)
        os.replace(fh.name, out / name)
    print("\n".join(md))
    print(f"\nwritten: {out / 'results.json'}, {out / 'results.md'}")
    return result


if __name__ == "__main__":
    main()
