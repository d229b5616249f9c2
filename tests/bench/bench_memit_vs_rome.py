"""MEMIT batch deletion against sequential ROME (docs/editing.md): erase every forget fact.

    python tests/bench/bench_memit_vs_rome.py [--model runs/demo/models/target]
        [--data runs/demo/world] [--out runs/demo/memit_vs_rome] [--objective fact_erasure]
        [--rome-layer 0] [--memit-layers 0,1] [--update-weights 15000,1000,100]
        [--settings default|pinned] [--new-tokens answer|N]

Every fact of facts/forget is deleted from one copy of the model: by ROME, one rank-one edit
per fact in sequence (each on the model the previous ones left), and by MEMIT, all facts in one
batch update per layer (one row per λ = --update-weights). Both use the same objective, v*
settings (rome_erasure.yaml's: 50 steps, clamp 10, weight decay 0.05; with --settings pinned
also its pre-#14 options), context templates and covariance corpus (the world's retain1 +
retain2 texts). Columns: rewrite score, mean p(true), Δ-accuracy on random (retain) facts and
on neighbourhood prompts, success@B of the three extraction attacks (Patil et al.'s: every
layer, k 4, 4 phrasings × 5 samples of --new-tokens tokens, substring match; docs/editing.md),
and the edit's wall and CPU seconds (C is computed once before the timed edits, so both read it
from the cache).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ATTACKS = ("head_projection", "prob_delta", "rephrase")
COLUMNS = ["method", "rewrite score", "p(true)", "Δ-acc random", "Δ-acc neighbourhood",
           "head projection s@B", "prob. delta s@B", "rephrase s@B", "edit wall s",
           "edit CPU s"]
SETTINGS = dict(objective="fact_erasure", v_steps=50, clamp_norm_factor=10.0,
                weight_decay=0.05)
# --settings pinned: also the options rome_erasure.yaml pins (the behaviour before issue #14
# made ROME's released code the default: squared decay, KL at the prompt's last token, early
# stop on the objective term, update exact for the mean key k*)
PINNED = dict(weight_decay_power=2, kl_position="last", stop_on="objective", update_key="mean")


def measure(model, base, tok, facts, retain, params) -> dict:
    from eval.attacks.editing import editing_metrics
    from eval.attacks.extraction import run_attack

    out = {name: run_attack(name, model, tok, facts, params).summary() for name in ATTACKS}
    out["editing"] = editing_metrics(model, tok, facts, base=base, retain_facts=retain,
                                     batch_size=params.batch_size)
    out["editing"].pop("per_fact", None)
    return out


def row(label, m, wall=None, cpu=None) -> list:
    ed = m["editing"]
    return [label, ed.get("rewrite_score"), ed["p_true_after"], ed.get("delta_acc_random"),
            ed.get("delta_acc_neighborhood"), *[m[a]["success_rate"] for a in ATTACKS],
            wall, cpu]


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)


def configs(args, n_corpus):
    from unlearn.memit import MemitConfig
    from unlearn.rome import EditConfig

    common = dict(SETTINGS, objective=args.objective, cov_samples=n_corpus,
                  **(PINNED if args.settings == "pinned" else {}))
    yield "ROME, sequential", EditConfig(layer=args.rome_layer, **common)
    layers = tuple(int(x) for x in args.memit_layers.split(","))
    for w in (float(x) for x in args.update_weights.split(",")):
        yield f"MEMIT layers {list(layers)}, λ {w:g}", MemitConfig(layers=layers,
                                                                 update_weight=w, **common)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/demo/models/target")
    ap.add_argument("--data", default="runs/demo/world")
    ap.add_argument("--out", default="runs/demo/memit_vs_rome")
    ap.add_argument("--objective", default="fact_erasure")
    ap.add_argument("--rome-layer", type=int, default=0)
    ap.add_argument("--memit-layers", default="0,1")
    ap.add_argument("--update-weights", default="15000,1000,100")
    ap.add_argument("--retain-limit", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--settings", choices=["default", "pinned"], default="default",
                    help="default: ROME's released-code options; pinned: rome_erasure.yaml's")
    ap.add_argument("--new-tokens", default="answer",
                    help="rephrase attack: tokens sampled per answer (N or 'answer')")
    return ap.parse_args()


def main() -> None:
    args = parse()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from eval.attacks.extraction import AttackParams
    from lethe.loading import load_model, load_table, load_tokenizer, model_identity
    from lethe.report import (atomic_write_text, library_versions, machine_info,
                              markdown_table, write_json)
    from unlearn.cli.attack import load_facts
    from unlearn.memit import MemitConfig, edit_model as memit_edit
    from unlearn.rome import edit_model as rome_edit, restore
    from unlearn.rome.covariance import get_covariance
    from unlearn.rome.model_layout import resolve_layout

    tok, base = load_tokenizer(args.model), load_model(args.model, dtype="float32").eval()
    model = copy.deepcopy(base)
    facts = load_facts(args.data, "forget", None)
    retain = load_facts(args.data, "retain", args.retain_limit)
    corpus = [r["text"] for split in ("retain1", "retain2")
              for r in load_table(args.data, config="raw", split=split, columns=("text",))]
    # the paper's attacks (every layer, k 4, 4 phrasings x 5 samples, substring match), but
    # sampling as many tokens as the answer has: one token never holds a multi-token name
    params = AttackParams(new_tokens=None if args.new_tokens == "answer"
                          else int(args.new_tokens))
    rows, records = [row("(no edit)", m := measure(model, base, tok, facts, retain, params))], \
        [{"method": "(no edit)", **m}]
    for label, cfg in configs(args, len(corpus)):
        is_memit = isinstance(cfg, MemitConfig)
        layers = cfg.layers if is_memit else (cfg.layer,)
        for layer in layers:  # C cached before the timed edit, for both methods alike
            get_covariance(model, tok, resolve_layout(model).module_name(layer), corpus, cfg)
        edit = memit_edit if is_memit else rome_edit
        record, wall, cpu = timed(lambda: edit(model, tok, facts, cfg, corpus))
        m = measure(model, base, tok, facts, retain, params)
        rows.append(row(label, m, wall, cpu))
        records.append({"method": label, "wall_s": wall, "cpu_s": cpu, **m,
                        "edit": record.summary()})
        restore(model, record)
        print(markdown_table(COLUMNS, rows[-1:], digits=3).splitlines()[-1], flush=True)
    table = markdown_table(COLUMNS, rows, digits=3)
    notes = (f"{len(facts)} forget facts deleted at once, Δ-acc random on {len(retain)} retain "
             f"facts; objective {args.objective}; settings {args.settings}; torch threads "
             f"{args.threads}.")
    out = Path(args.out)
    write_json(out / "results.json", {"model": model_identity(args.model), "args": vars(args),
                                      "rows": records, "versions": library_versions(),
                                      "machine": machine_info()})
    atomic_write_text(out / "results.md", f"# MEMIT vs sequential ROME\n\n{table}\n{notes}\n")
    print(table + "\n" + notes)


if __name__ == "__main__":
    main()
