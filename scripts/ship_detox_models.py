"""Copy a trained rewriter adapter / toxicity head into the package, with its model card.

    python scripts/ship_detox_models.py rewriter runs/detox/sft_paradetox [--eval RESULTS.json]
    python scripts/ship_detox_models.py classifier runs/detox/classifier_paradetox

`rewriter`: RUN/model's adapter_config.json + adapter_model.safetensors -> detox/data/rewriter/
(the `adapter: builtin` of `detox rewrite`), plus README.md (the model card: recipe, data
source and hash, steps, time, the training loss curve as a table and loss_curve.png, held-out
response NLL, and the command that retrains it). `classifier`: RUN/model (head.json +
head.safetensors) -> eval/detox/data/paradetox_toxicity/ (the `model: paradetox` of the
`classifier` STA scorer) with its card. `--eval` adds a held-out table (the results.json of
tests/bench/bench_detox_heldout.py) to the card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def loss_curve(run: Path, dest: Path, every: int = 50) -> str:
    """loss_curve.png in `dest` and a Markdown table of the loss every `every` steps (means of
    the logged values in each window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    pts = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([s for s, _ in pts], [v for _, v in pts])
    ax.set_xlabel("step")
    ax.set_ylabel("response-token NLL (train)")
    fig.savefig(dest / "loss_curve.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    lines = ["| steps | mean training loss |", "|---|---|"]
    for start in range(0, pts[-1][0], every):
        window = [v for s, v in pts if start < s <= start + every]
        if window:
            lines.append(f"| {start + 1}-{start + every} | {sum(window) / len(window):.3f} |")
    return "\n".join(lines) + "\n"


def ship_rewriter(run: Path, eval_json: Path | None) -> Path:
    dest = ROOT / "detox" / "data" / "rewriter"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(run / "model" / name, dest / name)
    res = json.loads((run / "results.json").read_text())
    if not res["data"].get("train_sha256_16"):  # runs before the hash was recorded
        res["data"]["train_sha256_16"] = _pairs_hash(res)
    from lethe.recipe import dump_yaml

    recipe = dump_yaml(res["recipe"])
    nll = res.get("held_out_response_nll", {})
    size = (dest / "adapter_model.safetensors").stat().st_size
    card = [
        "# The shipped ParaDetox rewriter (LoRA adapter on SmolLM2-135M-Instruct)\n",
        "Used by `detox rewrite`'s default recipe (`rewriter.base.adapter: builtin`). Trained by "
        "`detox train` (SFT: the response tokens' NLL) on ParaDetox toxic -> neutral1 pairs, "
        "the held-out slice (detox/heldout.py) left out.\n",
        f"- base: `smollm2` (SmolLM2-135M-Instruct, bundled GGUF dequantised to fp32)",
        f"- data: {res['data']['source']}, {res['data']['train']} training pairs "
        f"(sha256/16 of the pairs in training order: `{res['data'].get('train_sha256_16')}`), "
        f"{res['data']['held_out']} pairs held out for the response NLL",
        f"- steps: {res['steps']} (batch 8, 1 epoch), {res['train_seconds']:.0f} s wall "
        f"({res['seconds_per_step']} s/step; 1 torch thread on a shared 2-core CPU)",
        f"- held-out response NLL: {nll.get('initial', float('nan')):.3f} before, "
        f"{nll.get('final', float('nan')):.3f} after",
        f"- adapter: {size / 1e6:.1f} MB (safetensors, fp32)",
        f"- machine: {res.get('machine', {}).get('cpu', '?')}\n",
        "Retrain it: `detox train recipes/detox/sft_paradetox.yaml` (the public "
        "s-nlp/paradetox) or `detox train recipes/detox/local/sft_paradetox.yaml` (the copy "
        "beside the project it was trained on), then `python scripts/ship_detox_models.py "
        "rewriter runs/detox/sft_paradetox`.\n",
        "## Training loss\n", loss_curve(run, dest), "![loss](loss_curve.png)\n",
        "## Recipe\n", f"```yaml\n{recipe}```\n"]
    if eval_json is not None:
        card += ["## On the held-out slice\n", _eval_table(eval_json)]
    (dest / "README.md").write_text("\n".join(card))
    return dest


def _pairs_hash(res: dict) -> str:
    """The training pairs' hash, recomputed from the run's recipe (same loader, same seed)."""
    from detox.train.policy import prompt_builder
    from detox.train.recipe import DetoxTrainRecipe
    from detox.train.sft import _split_pairs, pairs_hash
    from lethe.loading import load_tokenizer
    from lethe.recipe import build

    recipe = build(DetoxTrainRecipe, res["recipe"])
    tok = load_tokenizer(recipe.model.name)
    data = _split_pairs(recipe, tok, prompt_builder(tok, recipe.prompt))
    assert len(data["train_pairs"]) == res["data"]["train"], "not the run's training pairs"
    return pairs_hash(data["train_pairs"])


def ship_classifier(run: Path, eval_json: Path | None) -> Path:
    dest = ROOT / "eval" / "detox" / "data" / "paradetox_toxicity"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("head.json", "head.safetensors"):
        shutil.copy(run / "model" / name, dest / name)
    res = json.loads((run / "results.json").read_text())
    v = res.get("valid", {})
    card = [
        "# The shipped ParaDetox toxicity classifier (`classifier` STA, `model: paradetox`)\n",
        "A logistic-regression head on the frozen bundled all-MiniLM-L6-v2 sentence embeddings "
        "(eval/detox/head.py), trained by `detox train-classifier` (kind: embedding_head) on "
        "ParaDetox toxic sentences (class `toxic`) against their human neutral rewrites (class "
        "`neutral`); the held-out slice (detox/heldout.py) left out.\n",
        f"- data: {res['data']['source']}, {res['data']['n_train']} training texts "
        f"(label counts {res['data']['train_label_counts']}, sha256/16 "
        f"`{res['data'].get('train_sha256_16')}`)",
        f"- C = {res.get('C')} (chosen on the valid fold), embedding {res.get('embed_seconds')} s "
        f"+ fit {res.get('fit_seconds')} s wall",
        f"- valid fold (5% of the inputs with their rewrites): macro-F1 "
        f"{v.get('macro_f1', float('nan')):.3f}, n = {v.get('n')}",
        "\nRetrain it: `detox train-classifier recipes/detox/classifier_paradetox.yaml` (public "
        "s-nlp/paradetox) or `recipes/detox/local/classifier_paradetox.yaml` (the copy beside the "
        "project it was trained on), then `python scripts/ship_detox_models.py classifier "
        "runs/detox/classifier_paradetox`.\n"]
    if eval_json is not None:
        card += ["## On the held-out slice\n", _eval_table(eval_json)]
    (dest / "README.md").write_text("\n".join(card))
    return dest


def _eval_table(path: Path) -> str:
    res = json.loads(path.read_text())
    return "```json\n" + json.dumps(res.get("classifiers_on_slice", res.get("systems")),
                                    indent=1) + "\n```\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["rewriter", "classifier"])
    ap.add_argument("run", type=Path)
    ap.add_argument("--eval", type=Path, default=None)
    a = ap.parse_args()
    fn = ship_rewriter if a.what == "rewriter" else ship_classifier
    print(fn(a.run, a.eval))


if __name__ == "__main__":
    main()
