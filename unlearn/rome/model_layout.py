"""Where each architecture keeps the MLP down-projection ROME rewrites, and its orientation.

ROME treats the MLP's output projection as a linear associative memory W: k -> v, with
k ∈ R^{d_ff} (the activation after the nonlinearity/gating) and v ∈ R^{d_model} (Meng et al.
2022, Sec. 3.1). transformers stores W two ways:
- `nn.Linear` (Llama, Mistral, Qwen, GPT-J, GPT-NeoX): weight (d_model, d_ff), y = x Wᵀ + b;
- GPT-2's `Conv1D`: weight (d_ff, d_model), y = x W + b — the transpose.
`EditLayout.orientation` says which, so update.py adds ΔW the right way round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lethe.lens import LensLayout, get_module, lens_layout
from lethe.errors import LetheError
from lethe.recipe import nearest

# model_type -> down-projection template ({} = layer)
DOWN_PROJ: dict[str, str] = {
    **{t: "model.layers.{}.mlp.down_proj"
       for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo",
                 "olmo2", "smollm3", "granite", "phi3", "stablelm")},
    "gpt2": "transformer.h.{}.mlp.c_proj",
    "gptj": "transformer.h.{}.mlp.fc_out",
    "gpt_neo": "transformer.h.{}.mlp.c_proj",
    "gpt_neox": "gpt_neox.layers.{}.mlp.dense_4h_to_h",
    "phi": "model.layers.{}.mlp.fc2",
}


# The edit layer of the published ROME hyperparameters: model_type -> {n_layers: (layer, where)}.
# kmeng01/rome hparams/ROME/*.json (GPT-2 medium/large/XL, GPT-J) and zjunlp/EasyEdit
# hparams/ROME/*.yaml (Llama-2-7B, Llama-3-8B, Llama-3.2-1B/3B, Mistral-7B, Qwen2/2.5-7B).
PUBLISHED_LAYERS: dict[str, dict[int, tuple[int, str]]] = {
    "gpt2": {24: (8, "kmeng01/rome hparams/ROME/gpt2-medium.json"),
             36: (12, "kmeng01/rome hparams/ROME/gpt2-large.json"),
             48: (17, "kmeng01/rome hparams/ROME/gpt2-xl.json")},
    "gptj": {28: (5, "kmeng01/rome hparams/ROME/EleutherAI_gpt-j-6B.json")},
    "llama": {16: (5, "zjunlp/EasyEdit hparams/ROME/llama3.2-1b.yaml"),
              28: (5, "zjunlp/EasyEdit hparams/ROME/llama3.2-3b.yaml"),
              32: (5, "zjunlp/EasyEdit hparams/ROME/llama-7b.yaml")},
    "mistral": {32: (5, "zjunlp/EasyEdit hparams/ROME/mistral-7b.yaml")},
    "qwen2": {28: (5, "zjunlp/EasyEdit hparams/ROME/qwen2.5-7b.yaml")},
}


def default_layer(model_type: str | None, n_layers: int) -> tuple[int, str]:
    """(edit layer, where it comes from) when EditConfig.layer is None.

    A published configuration of this model_type and depth gives its layer. Another depth of a
    published model_type gets the same *relative* depth as the published configuration of
    the nearest depth (round(layer · n / n_pub), e.g. 4 of GPT-2 small's 12 blocks from
    GPT-2 medium's 8 of 24), kept below the last block. Any other model_type: n_layers // 5.
    """
    table = PUBLISHED_LAYERS.get(model_type or "", {})
    if n_layers in table:
        return table[n_layers]
    if table:
        n_pub = min(table, key=lambda n: (abs(n - n_layers), n))
        layer_pub, where = table[n_pub]
        layer = min(max(0, round(layer_pub * n_layers / n_pub)), max(0, n_layers - 2))
        return layer, f"{layer_pub}/{n_pub} of the depth, as in {where}"
    return n_layers // 5, "n_layers // 5 (no published ROME configuration for this model_type)"


@dataclass(frozen=True)
class EditLayout:
    rewrite_module: str  # template with {} for the layer
    lens: LensLayout  # blocks + final norm (logit lens)
    n_layers: int

    def module_name(self, layer: int) -> str:
        return self.rewrite_module.format(layer)


def resolve_layout(model, rewrite_module: str | None = None, blocks: str | None = None,
                   final_norm: str | None = None) -> EditLayout:
    """The edit layout of `model` (auto-detected from model_type; any name can be overridden)."""
    model_type = getattr(model.config, "model_type", None)
    template = rewrite_module or DOWN_PROJ.get(model_type)
    if template is None:
        raise LetheError(f"no down-projection template for model_type '{model_type}'; set "
                         f"EditConfig.rewrite_module (e.g. 'model.layers.{{}}.mlp.down_proj')")
    lens = lens_layout(model, blocks, final_norm)
    n_layers = len(get_module(model, lens.blocks))
    return EditLayout(template, lens, n_layers)


def check_layer(layout: EditLayout, layer: int) -> int:
    if not 0 <= layer < layout.n_layers:
        raise LetheError(f"edit layer {layer} is out of range: the model has {layout.n_layers} "
                         f"layers (0..{layout.n_layers - 1})")
    return layer


def rewrite_target(model, layout: EditLayout, layer: int) -> tuple[str, torch.nn.Module, str]:
    """(module name, module, orientation) of the down-projection at `layer`.

    orientation: "out_in" (nn.Linear, weight (d_model, d_ff)) or "in_out" (Conv1D, weight
    (d_ff, d_model)).
    """
    check_layer(layout, layer)
    name = layout.module_name(layer)
    try:
        module = model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n.endswith(name.rsplit(".", 1)[-1])
                 or "mlp" in n]
        raise LetheError(f"rewrite module '{name}' (template '{layout.rewrite_module}') not found "
                         f"in {type(model).__name__}{nearest(name, names)}; fix "
                         f"EditConfig.rewrite_module") from None
    if isinstance(module, torch.nn.Linear):
        return name, module, "out_in"
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        return name, module, "in_out"
    raise LetheError(f"rewrite module '{name}' is a {type(module).__name__}; ROME needs an "
                     f"nn.Linear or a GPT-2 Conv1D down-projection")
