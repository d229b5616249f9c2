"""`unlearn covariance`: precompute ROME's key covariance C for a model's layers.

    unlearn covariance MODEL --layers 5[,6,...] --data SOURCE [--config raw] [--split retain1]
                       [--column text] [--samples 1000] [--max-length 256] [--dtype float32]

C = E[k kᵀ] of the MLP down-projection's inputs over SOURCE's texts is cached under
$LETHE_CACHE/covariance (default ~/.cache/lethe); later edits of the same model, layer and
corpus settings read it instead of recomputing (docs/editing.md, "Covariance").
"""

from __future__ import annotations

import click


@click.command("covariance")
@click.argument("model", metavar="MODEL")
@click.option("--layers", required=True, metavar="L1,L2,...", help="Block indices to cover.")
@click.option("--data", required=True, metavar="SOURCE",
              help="Corpus: a local file or directory, or a hub dataset id.")
@click.option("--config", default=None, help="Dataset config (a Lethe world: raw).")
@click.option("--split", default="train", show_default=True,
              help="Dataset split (a Lethe world: retain1).")
@click.option("--column", default="text", show_default=True, help="Text column.")
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Number of texts (EditConfig.cov_samples).")
@click.option("--max-length", type=click.IntRange(min=2), default=256, show_default=True,
              help="Tokens per text (EditConfig.cov_max_length).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--dtype", "cov_dtype", type=click.Choice(["float32", "float64"]),
              default="float32", show_default=True, help="dtype of C.")
@click.option("--rewrite-module", default=None, metavar="TEMPLATE",
              help="Down-projection name template, e.g. 'model.layers.{}.mlp.down_proj' "
                   "(default: from the model type).")
@click.option("--model-dtype", default="auto", show_default=True, help="dtype to load MODEL.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, ...")
def covariance(model, layers, data, config, split, column, samples, max_length, batch_size,
               cov_dtype, rewrite_module, model_dtype, device):
    """Precompute ROME's key covariance C = E[k kᵀ] for layers of MODEL.

    k is the input of the MLP down-projection at every corpus token. C is cached under
    $LETHE_CACHE/covariance (default ~/.cache/lethe), keyed by the model's weights, the layer,
    the corpus and these settings; edits with the same settings read it (docs/editing.md).

    \b
    Example (a Lethe world's retain texts):
      unlearn covariance runs/demo/models/target --layers 0,1 --data runs/demo/world \\
          --config raw --split retain1
    """
    from lethe.cli import int_list
    from lethe.lm import load_for_inference
    from lethe.loading import load_tokenizer
    from unlearn.rome.covariance import get_covariance
    from unlearn.rome.hparams import EditConfig
    from unlearn.rome.model_layout import resolve_layout, rewrite_target

    layer_list = int_list(layers, "--layers")
    if not layer_list:
        from lethe.errors import LetheError

        raise LetheError("--layers must name at least one block index, e.g. --layers 5")
    cfg = EditConfig(rewrite_module=rewrite_module, cov_dataset=data, cov_config=config,
                     cov_split=split, cov_column=column, cov_samples=samples,
                     cov_max_length=max_length, cov_batch_size=batch_size, cov_dtype=cov_dtype)
    tok = load_tokenizer(model)
    lm = load_for_inference(model, dtype=model_dtype, device=device)
    layout = resolve_layout(lm, cfg.rewrite_module)
    targets = [rewrite_target(lm, layout, layer)[0] for layer in layer_list]  # checks all first
    for layer, name in zip(layer_list, targets):
        cov = get_covariance(lm, tok, name, data, cfg)
        state = "cached" if cov.cache_hit else f"computed from {cov.n_tokens} tokens"
        click.echo(f"layer {layer} ({name}): {state} -> {cov.path}")
