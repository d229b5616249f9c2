"""One GPU session's measurements, written into docs/gpu.md (refuses without a CUDA GPU).

    python scripts/gpu_run.py [--runs runs/gpu] [--doc docs/gpu.md] [--only shakespeare,muse_books]

Two runs, in this process, each through the same code as `unlearn run`:

1. shakespeare — recipes/shakespeare_compare.yaml at full size: every chunk of Macbeth and of
   the four retain plays, target and retrain fully fine-tuned (no LoRA) in bf16, every method
   of the comparison fully fine-tuned in bf16, then the six-way evaluation.
2. muse_books — recipes/harry_potter.yaml's code path (NPO_GDR, bf16, gradient checkpointing,
   DeepSpeed ZeRO-3 in one process, MUSE's PrivLeak preset for the Books retrain AUC) with a
   small Llama (SmolLM2-135M, the bundled `smollm2`) as the target and, as data, the
   Shakespeare corpus written in MUSE-Books's hub layout (`unlearn.hub_layout`), read through
   `datasets.load_dataset` exactly as `muse-bench/MUSE-Books` would be.

For every training stage it records tokens/s (the trainer's `tokens_seen` over its
`train_runtime`), seconds per optimizer step, the peak GPU memory of the run
(`torch.cuda.max_memory_allocated`) and MFU = 6·N·tokens/s ÷ the GPU's dense bf16 peak (N: the
model's parameters; 6N is a full forward + backward per token, attention FLOPs left out), and
writes runs/gpu/gpu.json and the "Measured on a GPU" section of docs/gpu.md. Budget: both runs
were sized to finish in under 10 minutes on one H100/H200-class GPU (an estimate: this script
has not yet run on one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROG = "gpu_run"
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0,
                    "H100": 756.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0,
                    "A10": 125.0}
SECTION = "## Measured on a GPU"


def refuse_without_gpu() -> None:
    """One line on stderr and exit 2 when no CUDA device is visible."""
    import torch

    if not torch.cuda.is_available():
        print(f"{PROG}: error: no CUDA GPU is visible (torch.cuda.is_available() is False); "
              f"run this script on a machine with one", file=sys.stderr)
        sys.exit(2)


def peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of a device named `name` (longest matching key), or None."""
    hits = [k for k in PEAK_BF16_TFLOPS if k.replace(" ", "").lower()
            in name.replace(" ", "").lower()]
    return PEAK_BF16_TFLOPS[max(hits, key=len)] if hits else None


def mfu(params: int, tokens_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: 6·N FLOPs per trained token against the peak (TFLOP/s)."""
    return None if not peak or not tokens_per_s else 6 * params * tokens_per_s / (peak * 1e12)


def trainer_record(trainer_dir: Path) -> dict | None:
    """The final record (train_runtime, tokens_seen, step) of a stage's metrics.jsonl."""
    path = trainer_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    final = [json.loads(line) for line in path.read_text().splitlines()
             if '"train_runtime"' in line]
    return final[-1] if final else None


def stage_row(label: str, seconds: float, tokens: int, steps: int, params: int,
              peak: float | None) -> dict:
    tps = tokens / seconds if seconds else 0.0
    return {"stage": label, "seconds": round(seconds, 1), "tokens": tokens, "steps": steps,
            "tokens_per_s": round(tps), "s_per_step": round(seconds / steps, 3) if steps else None,
            "mfu": mfu(params, tps, peak)}


def shakespeare_overrides(runs: Path) -> list[str]:
    """recipes/shakespeare_compare.yaml at full size, full fine-tuning, bf16."""
    return [f"shakespeare.dir={runs}/shakespeare/data", "shakespeare.max_forget_chunks=100000",
            "shakespeare.max_retain_chunks=100000", f"prepare.out_dir={runs}/shakespeare/models",
            f"model.target={runs}/shakespeare/models/target",
            f"model.retrain={runs}/shakespeare/models/retrain",
            f"data.source={runs}/shakespeare/data", f"output_dir={runs}/shakespeare/compare",
            "prepare.lora.enabled=false", "prepare.max_length=512",
            "prepare.train.learning_rate=5e-5", "prepare.train.bf16=true",
            "prepare.train.per_device_train_batch_size=16", "lora.enabled=false",
            "train.learning_rate=1e-5", "train.bf16=true", "model.dtype=bfloat16",
            "data.max_length=512", "eval.batch_size=32"]


def muse_books_overrides(runs: Path, data: Path, target: str) -> list[str]:
    """recipes/harry_potter.yaml with a small Llama and local MUSE-Books-layout data."""
    return [f"model.target={target}", f"data.source={data}", f"output_dir={runs}/muse_books",
            "train.num_train_epochs=2", "train.gradient_accumulation_steps=1",
            "train.per_device_train_batch_size=4", "train.save_strategy=no", "eval.batch_size=16"]


def run_recipe_measured(path: str, overrides: list[str]) -> tuple[dict, float, float]:
    """`unlearn run` in this process; returns (the recipe, wall seconds, peak GiB)."""
    import torch

    from unlearn.pipeline import run_recipe
    from unlearn.preflight import preflight_run
    from unlearn.recipe import load_unlearn_recipe

    rec = load_unlearn_recipe(path, overrides)
    preflight_run(rec, overwrite=True, evaluate=True)
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run_recipe(rec, path, resume=False, overwrite=True, evaluate=True)
    return rec, time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**30


def stages_of(rec, peak: float | None) -> list[dict]:
    """One row per training stage of a finished run: prepare's two models, every variant."""
    from unlearn.recipe import expand_variants

    rows = []
    if rec.prepare is not None and (Path(rec.prepare.out_dir) / "prepare.json").is_file():
        summary = json.loads((Path(rec.prepare.out_dir) / "prepare.json").read_text())
        for name, m in summary["models"].items():
            rows.append(stage_row(f"prepare {name}", m["train_seconds"], m["train_tokens"],
                                  m["steps"], m["parameters"], peak))
    variants = expand_variants(rec) or [(rec.method.name, rec)]
    params = _parameters(rec.target_spec())
    for label, v in variants:
        for trainer_dir in sorted(Path(v.output_dir).glob("**/metrics.jsonl")):
            record = trainer_record(trainer_dir.parent)
            if record and record.get("tokens_seen"):
                stage = trainer_dir.parent.relative_to(v.output_dir)
                rows.append(stage_row(f"{label} {stage}", record["train_runtime"],
                                      record["tokens_seen"], record["step"], params, peak))
    return rows


def _parameters(spec: str) -> int:
    import math

    from lethe.loading import local_checkpoint
    from lethe.preflight import checkpoint_tensors

    tensors = checkpoint_tensors(local_checkpoint(spec)).values()
    return sum(math.prod(t["shape"]) for t in tensors)


def muse_books_data(runs: Path) -> Path:
    """The Shakespeare corpus (recipe defaults) in MUSE-Books's hub layout."""
    from unlearn.hub_layout import write_hub_files
    from unlearn.shakespeare import ShakespeareSection, build

    out = runs / "muse_books_data"
    if not (out / "README.md").is_file():
        write_hub_files(build(ShakespeareSection()), out, layout="muse-books",
                        title="Shakespeare in MUSE-Books's layout")
    return out


def measure(only: set[str], runs: Path) -> dict:
    import torch

    from lethe.loading import local_checkpoint

    name = torch.cuda.get_device_name(0)
    peak = peak_tflops(name)
    out = {"device": name, "peak_bf16_tflops": peak, "runs": {}}
    jobs = {"shakespeare": lambda: ("recipes/shakespeare_compare.yaml",
                                    shakespeare_overrides(runs)),
            "muse_books": lambda: ("recipes/harry_potter.yaml", muse_books_overrides(
                runs, muse_books_data(runs), local_checkpoint("smollm2")))}
    for label, job in jobs.items():
        if label not in only:
            continue
        path, overrides = job()
        rec, seconds, peak_gib = run_recipe_measured(path, overrides)
        out["runs"][label] = {"recipe": path, "overrides": overrides,
                              "wall_seconds": round(seconds, 1),
                              "peak_memory_gib": round(peak_gib, 2),
                              "stages": stages_of(rec, peak)}
        print(json.dumps(out["runs"][label]), flush=True)
    return out


def render(results: dict) -> str:
    from lethe.report import library_versions

    lines = [SECTION, "", f"Measured by `python scripts/gpu_run.py` on {results['device']} "
             f"(dense bf16 peak {results['peak_bf16_tflops'] or 'unknown'} TFLOP/s; MFU = "
             f"6·N·tokens/s ÷ peak). torch {library_versions().get('torch', '?')}.", ""]
    for label, run in results["runs"].items():
        lines += [f"### {label}: `{run['recipe']}`", "",
                  f"Wall time {run['wall_seconds']:.0f} s (prepare, unlearning and "
                  f"evaluation); peak GPU memory {run['peak_memory_gib']:.2f} GiB.", "",
                  "| stage | tokens/s | s/step | steps | MFU |", "|---|---|---|---|---|"]
        for s in run["stages"]:
            m = f"{100 * s['mfu']:.1f}%" if s["mfu"] is not None else "–"
            lines.append(f"| {s['stage']} | {s['tokens_per_s']:,} | {s['s_per_step']} | "
                         f"{s['steps']} | {m} |")
        lines.append("")
    return "\n".join(lines)


def write_doc(doc: Path, section: str) -> None:
    """Replace docs/gpu.md's "Measured on a GPU" section (to the end of the file)."""
    from lethe.report import atomic_write_text

    text = doc.read_text(encoding="utf-8")
    head = text.split(SECTION, 1)[0].rstrip() + "\n\n" if SECTION in text else text + "\n"
    atomic_write_text(doc, head + section)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/gpu", help="where models and reports go")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "gpu.md"))
    parser.add_argument("--only", default="shakespeare,muse_books")
    args = parser.parse_args(argv)
    refuse_without_gpu()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(ROOT))
    from lethe.cli import setup_logging
    from lethe.report import write_json

    setup_logging(False)
    runs = Path(args.runs)
    results = measure(set(args.only.split(",")), runs)
    write_json(runs / "gpu.json", results)
    write_doc(Path(args.doc), render(results))
    print(f"wrote {runs / 'gpu.json'} and {args.doc}")


if __name__ == "__main__":
    main()
