"""Rewriters vs the trivial baselines on the ParaDetox held-out slice (detox/heldout.py).

    python tests/bench/bench_detox_heldout.py [--n 500] [--systems default,sft,...]
                                              [--out runs/bench/detox_heldout]

Data: the last 500 parsed rows of ../shared/data/paradetox_dev.tsv (rows 8493-8992, the slice
every pool, training set and prompt loader leaves out), `--n` of them from the start of the
slice; references = their neutral1..3. Each system is one `detox rewrite` run in a subprocess
(OMP_NUM_THREADS=1 by default; on this shared 2-core machine one thread is faster than two),
timed by wall clock (its own summary line: lines/s including model loading) and by the CPU
time of the subprocess (user + sys). Then one `detox eval` per system with the default scorers
(STA_bin: alt-profanity-check; STA_clf: the shipped ParaDetox classifier; SIM: MiniLM; FL:
SmolLM2 perplexity; chrF vs references) - the first also with `--baselines copy,delete`.
Writes <out>/<system>.jsonl, <system>.eval/, and results.json + results.md with the closing
table and 5 example rewrites of `--examples` (default: default) next to delete's. Reruns resume
(a finished system is not generated again; delete `<system>.jsonl` to redo it).

Also scores the STA scorers themselves as classifiers on the slice (toxic vs neutral1).
Skips with a message when the data are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "paradetox_dev.tsv"
SYSTEMS = {  # name -> detox rewrite arguments (besides input and output)
    "default": [],
    "fewshot_builtin": ["--recipe", "recipes/detox/fewshot.yaml"],
    "fewshot_paradetox": ["--recipe", "recipes/detox/local/fewshot_paradetox.yaml"],
    "sft": ["--recipe", "recipes/detox/trained.yaml"],
    "best_of_4_sft": ["--set", "rewriter.n=4"],  # the default + 4 samples (temperature 1)
    # after `detox train recipes/detox/local/rl_paradetox.yaml` (GRPO from the shipped adapter):
    "sft_rl": ["--recipe", "recipes/detox/trained.yaml",
               "--set", "rewriter.adapter=runs/detox/rl_paradetox/model"],
    "default_rl": ["--set", "rewriter.base.adapter=runs/detox/rl_paradetox/model"],
}
COLUMNS = ("sta_bin", "sta_bin_clf", "sim", "fl", "chrf", "j_bin_chrf", "j_clf", "j_paradetox",
           "refusal")


def write_input(out: Path, n: int) -> Path:
    from detox.heldout import HELDOUT_ROWS, is_heldout
    from detox.rewrite.fewshot import read_rows

    rows = read_rows(DATA)[-HELDOUT_ROWS:][:n]
    first = len(read_rows(DATA)) - HELDOUT_ROWS
    assert all(is_heldout(r["toxic"]) for r in rows)
    path = out / "heldout.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, r in enumerate(rows, start=first):
            refs = [r[c] for c in ("neutral1", "neutral2", "neutral3") if r[c].strip()]
            fh.write(json.dumps({"id": i, "text": r["toxic"], "references": refs}) + "\n")
    return path


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(cmd: list[str], env: dict) -> tuple[str, float, float]:
    """(stderr, wall s, CPU s of the subprocess)."""
    cpu0, t0 = cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc.stderr, time.perf_counter() - t0, cpu_children() - cpu0


def rewrite(name: str, inp: Path, out: Path, env: dict, timing: dict) -> Path:
    dest = out / f"{name}.jsonl"
    n_in = sum(1 for _ in inp.open())
    if dest.is_file() and sum(1 for _ in dest.open()) == n_in and name in timing:
        return dest
    err, wall, cpu = run([sys.executable, "-m", "detox", "rewrite", str(inp), "-o", str(dest),
                          "--overwrite", *SYSTEMS[name]], env)
    rate = re.search(r"\(([\d.]+) lines/s\)", err)
    timing[name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                    "lines_per_s": float(rate.group(1)) if rate else None,
                    "cpu_s_per_line": round(cpu / n_in, 3), "threads": env["OMP_NUM_THREADS"]}
    return dest


def bench_env(threads: str = "1") -> dict:
    """The environment every bench subprocess runs in: offline, this checkout, `threads`."""
    return {**os.environ, "OMP_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


def evaluate(name: str, path: Path, env: dict, baselines: bool, metrics=None,
             extra: tuple = ()) -> dict:
    """`detox eval --per-example` of `path` into `<path>.eval/`; its results.json."""
    report = path.with_suffix(".eval")
    args = [sys.executable, "-m", "detox", "eval", str(path), "--report-dir", str(report),
            "--per-example"] + (["--baselines", "copy,delete"] if baselines else []) \
        + (["--metrics", ",".join(metrics)] if metrics else []) + list(extra)
    run(args, env)
    return json.loads((report / "results.json").read_text())


def evaluate_records(path: Path, records: list[dict], env: dict, metrics, baselines=False,
                     extra: tuple = ()) -> tuple[dict, list[dict]]:
    """Write `records` (id, text, rewrite[, references]) to `path`, score them with
    `evaluate`; (results.json, the per-example rows in the records' order)."""
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    res = evaluate(path.stem, path, env, baselines, metrics, extra)
    per = path.with_suffix(".eval") / "per_example.jsonl"
    return res, [json.loads(x) for x in per.open()]


def classifier_check(inp: Path) -> dict:
    """The STA scorers as classifiers of toxic vs neutral1 on the slice (macro-F1)."""
    from sklearn.metrics import f1_score

    from eval.detox.registry import create, scorer_configs

    rows = [json.loads(x) for x in inp.open()]
    texts = [r["text"] for r in rows] + [r["references"][0] for r in rows]
    gold = [1] * len(rows) + [0] * len(rows)
    out = {}
    for name, cfg in (("profanity", scorer_configs("sta")["profanity"]()),
                      ("classifier (paradetox head)",
                       scorer_configs("sta")["classifier"](model="paradetox"))):
        pred = [int(p >= 0.5) for p in create(cfg).toxic_prob(texts)]
        out[name] = {"macro_f1": f1_score(gold, pred, average="macro"),
                     "toxic_recall": sum(p for p, g in zip(pred, gold) if g) / len(rows),
                     "neutral_flagged": sum(p for p, g in zip(pred, gold) if not g) / len(rows)}
    return out


def table(results: dict, timing: dict) -> str:
    from lethe.report import markdown_table

    rows = []
    for name, m in results.items():
        t = timing.get(name, {})
        rows.append([name, *(m.get(c) for c in COLUMNS), t.get("lines_per_s"),
                     t.get("cpu_s_per_line")])
    return markdown_table(["system", *COLUMNS, "lines/s", "CPU s/line"], rows, digits=3)


def examples(out: Path, system: str, k: int = 5) -> str:
    sysrows = [json.loads(x) for x in (out / f"{system}.jsonl").open()]
    from detox.rewrite.baselines import DeleteConfig
    from detox.rewrite.rewriters import Item

    picks = sysrows[:: max(1, len(sysrows) // k)][:k]
    dels = DeleteConfig().build().rewrite([Item(r["text"]) for r in picks])
    lines = [f"| input | delete | {system} | reference |", "|---|---|---|---|"]
    for r, d in zip(picks, dels):
        lines.append(f"| {r['text']} | {d.text} | {r['rewrite']} | {r['references'][0]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--systems", default="default")
    ap.add_argument("--out", default="runs/bench/detox_heldout")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--examples", default="default")
    a = ap.parse_args()
    if not DATA.is_file():
        print(f"skipped: {DATA} not found (development data beside the project)")
        return
    out = ROOT / a.out
    env = bench_env(a.threads)
    inp = write_input(out, a.n)
    state_file = out / "results.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    timing, results = state.get("timing", {}), state.get("systems", {})
    for i, name in enumerate([s for s in a.systems.split(",") if s]):
        path = rewrite(name, inp, out, env, timing)
        rep = evaluate(name, path, env, baselines=i == 0)
        results[name] = rep["metrics"]
        for b, m in rep.get("baselines", {}).items():
            results[b] = m
        state = {"n": a.n, "rows": "paradetox_dev.tsv rows 8493.. (held-out slice)",
                 "timing": timing, "systems": results, "machine": rep.get("machine")}
        state_file.write_text(json.dumps(state, indent=2) + "\n")
    state["classifiers_on_slice"] = classifier_check(inp)
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    md = (f"# ParaDetox held-out slice, first {a.n} rows\n\n" + table(results, timing)
          + "\n" + (examples(out, a.examples) if (out / f"{a.examples}.jsonl").is_file() else "")
          + "\n```\n" + json.dumps(state["classifiers_on_slice"], indent=1) + "\n```\n")
    (out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
