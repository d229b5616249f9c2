"""Benchmark: ROME edit time with a cold vs a warm covariance cache.

    python tests/bench/bench_rome_edit.py                  # random 4-layer Llama, d=256 (~1 min)
    python tests/bench/bench_rome_edit.py --model smollm2  # SmolLM2-135M (several minutes on CPU)

Edits the same facts twice into a fresh LETHE_CACHE: the first edit computes C = E[k kᵀ] over
the corpus (the Lethe demo world's retain texts), the second reads it from the cache. Prints
seconds per phase and the cold/warm ratio. Not a test: numbers vary with the machine's load.
The defaults are the settings docs/editing.md's table was measured with (edit layer
n_layers // 5, squared weight decay, KL at the prompt's last token, update exact for k*);
--reference-defaults uses EditConfig's defaults instead (docs/faithfulness.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

KNOWN_FACTS = [  # facts SmolLM2-135M-Instruct answers greedily
    {"subject": "The Eiffel Tower", "prompt": "{} is located in the city of",
     "target_true": "Paris", "relation": "city", "case_id": 0},
    {"subject": "The Colosseum", "prompt": "{} is located in the city of",
     "target_true": "Rome", "relation": "city", "case_id": 1},
]


def random_llama(tok, d: int, layers: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=d, intermediate_size=4 * d,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="random", help="'random' or a model spec (smollm2, dir)")
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--facts", type=int, default=2)
    ap.add_argument("--cov-samples", type=int, default=200)
    ap.add_argument("--v-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--objective", default="fact_erasure")
    ap.add_argument("--update-key", choices=("mean", "prompt"), default="mean")
    ap.add_argument("--reference-defaults", action="store_true",
                    help="EditConfig's defaults (layer included) instead of the measured ones")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cache = tempfile.mkdtemp(prefix="lethe-bench-cov-")
    gguf_cache = os.environ.get("LETHE_CACHE")

    import torch

    torch.set_num_threads(args.threads)
    from unlearn.rome import EditConfig, edit_model, restore
    from unlearn.world import WorldSpec, generate_world

    world = generate_world(WorldSpec(seed=0, size="demo"))
    corpus = [r["text"] for g in ("retain1", "retain2") for r in world.data["raw"][g]]
    t0 = time.perf_counter()
    if args.model == "random":
        sys.path.insert(0, str(ROOT / "tests" / "rome"))
        import edit_toy

        tok = edit_toy.tokenizer(600)
        model = random_llama(tok, 256, 4)
        facts = world.data["facts"]["forget"][:args.facts]
    else:
        from lethe.loading import load_model, load_tokenizer

        tok, model = load_tokenizer(args.model), load_model(args.model, dtype="float32").eval()
        facts = KNOWN_FACTS[:args.facts]
    load_s = time.perf_counter() - t0
    os.environ["LETHE_CACHE"] = cache  # after loading: a GGUF conversion stays in its own cache
    pinned = {} if args.reference_defaults else dict(
        weight_decay_power=2, kl_position="last", stop_on="objective",
        layer=args.layer if args.layer is not None else model.config.num_hidden_layers // 5)
    cfg = EditConfig(**{"layer": args.layer, **pinned}, objective=args.objective,
                     update_key=args.update_key, context_lengths=((5, 3),), v_steps=args.v_steps,
                     cov_samples=args.cov_samples, cov_max_length=128)
    from eval.attacks.editing import answer_probs, fact_queries

    queries = fact_queries(facts)
    p_before = answer_probs(model, tok, *queries)
    timings = {}
    for phase in ("cold", "warm"):
        t = time.perf_counter()
        record = edit_model(model, tok, facts, cfg, corpus)
        timings[phase] = time.perf_counter() - t
        timings[f"{phase}_hit"] = record.covariance["cache_hit"]
        per_fact = sum(e.seconds for e in record.edits) / len(record.edits)
        p_after = answer_probs(model, tok, *queries)
        restore(model, record)
    if gguf_cache is not None:
        os.environ["LETHE_CACHE"] = gguf_cache
    shutil.rmtree(cache, ignore_errors=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {args.model} ({n_params / 1e6:.1f}M params, layer {record.layer}, "
          f"{record.covariance['n_tokens']} corpus tokens), {len(facts)} facts, "
          f"{args.v_steps} v-steps, {torch.get_num_threads()} thread(s); load {load_s:.1f} s")
    print(f"cold (computes C):  {timings['cold']:.2f} s  (cache hit: {timings['cold_hit']})")
    print(f"warm (cached C):    {timings['warm']:.2f} s  (cache hit: {timings['warm_hit']})")
    print(f"per fact (k*, v*, update): {per_fact:.2f} s")
    print(f"ratio cold / warm: {timings['cold'] / timings['warm']:.2f}x")
    print(f"p(true answer) before -> after the {args.objective} edit "
          f"(update_key {args.update_key}): " + ", ".join(
        f"{f['target_true']} {a:.3f} -> {b:.3f}" for f, a, b in zip(facts, p_before, p_after)))


if __name__ == "__main__":
    main()
