"""Representation Misdirection for Unlearning (RMU; Li et al. 2024, "The WMDP Benchmark",
arXiv:2403.03218, the RMU forget and retain losses).

With h_ℓ(x) the residual-stream output of decoder layer ℓ (B, T, H), u a fixed random unit
vector and c the steering coefficient:

    L_forget = mean_tokens ‖h_ℓ^θ(x_f) − c·u‖² / H
    L_retain = mean_tokens ‖h_ℓ^θ(x_r) − h_ℓ^ref(x_r)‖² / H
    L = L_forget + α·L_retain

(the squared norm is averaged over the hidden size, as the authors' code does with mse_loss;
padding tokens are excluded). Only the parameters of layers ℓ-2..ℓ train (the paper's choice);
`prepare` freezes everything else. Activations are read with forward hooks that are removed
after every forward, and the forward stops right after layer ℓ (later layers cannot matter).
h_ℓ^ref comes from a `Reference`: adapters disabled under LoRA, otherwise a frozen snapshot of
the few trainable layers only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from lethe.errors import LetheError
from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import part_of


@dataclass(frozen=True)
class RMUConfig(MethodConfig):
    name: str = "rmu"
    # Decoder layer ℓ whose output is steered (negative counts from the end). None: about 7/32 of
    # the way up, as the paper's layer 7 of Zephyr-7B's 32 (layer 1 of a 4-layer model).
    layer: int | None = None
    # Layers whose parameters train. None: ℓ-2, ℓ-1, ℓ (the paper), clipped at layer 0.
    update_layers: tuple[int, ...] | None = None
    # Substrings of parameter names (relative to a layer) that train inside update_layers; the
    # paper trains only the MLP output projection. () trains all of them (e.g. LoRA adapters).
    params: tuple[str, ...] = ("mlp.down_proj",)
    # Steering coefficient c: the norm of the target c·u. The paper uses 6.5 for Zephyr-7B (whose
    # layer-7 activations are larger); ~a few times the typical activation norm of layer ℓ works.
    steering_coeff: float = 6.5
    alpha: float = 100.0  # retain weight α (paper: 1200, tuned for Zephyr-7B; 100 is untuned)
    seed: int = 0  # seed of the random direction u (uniform [0,1)^H, normalised, as the paper)


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's stack of decoder layers: the ModuleList of `num_hidden_layers` blocks."""
    model = getattr(model, "module", model)  # DDP/DeepSpeed wrappers keep the model in .module
    n = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise LetheError(f"rmu: cannot find the {n} decoder layers of {type(model).__name__} "
                     f"(expected a ModuleList of config.num_hidden_layers blocks)")


def resolve_layers(num_layers: int, cfg: RMUConfig) -> tuple[int, list[int]]:
    """(steered layer ℓ, sorted update layers) as non-negative indices, validated."""
    layer = round(num_layers * 7 / 32) if cfg.layer is None else cfg.layer
    if not -num_layers <= layer < num_layers:
        raise LetheError(f"method.layer: {layer} is out of range for a model with {num_layers} "
                         f"layers (use 0..{num_layers - 1} or a negative index)")
    layer %= num_layers
    update = (range(max(0, layer - 2), layer + 1) if cfg.update_layers is None
              else cfg.update_layers)
    out = set()
    for i in update:
        if not -num_layers <= i < num_layers:
            raise LetheError(f"method.update_layers: {i} is out of range for a model with "
                             f"{num_layers} layers")
        if i % num_layers > layer:
            raise LetheError(f"method.update_layers: layer {i} is above the steered layer "
                             f"{layer}; it cannot change layer {layer}'s output")
        out.add(i % num_layers)
    return layer, sorted(out)


def rmu_prepare(model, cfg: RMUConfig):
    """Freeze every parameter except `cfg.params` inside the update layers (never unfreezes).

    Call after LoRA is applied (then only matching adapter weights stay trainable).
    """
    layers = decoder_layers(model)
    _, update = resolve_layers(len(layers), cfg)
    keep = {id(p) for i in update for name, p in layers[i].named_parameters()
            if not cfg.params or any(s in name for s in cfg.params)}
    for p in model.parameters():
        if id(p) not in keep:
            p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise LetheError(f"rmu: no trainable parameter matches method.params "
                         f"{list(cfg.params)} in layers {update} (with LoRA, target those "
                         f"modules in lora.target_modules or set method.params: [])")
    return model


class _Stop(Exception):
    """Raised by the capture hook to end a forward once layer ℓ has run."""


@contextlib.contextmanager
def _capture(layer: torch.nn.Module):
    """Record `layer`'s output (B, T, H) into the yielded dict, then stop the forward."""
    store: dict[str, torch.Tensor] = {}

    def hook(module, args, output):
        store["h"] = output[0] if isinstance(output, tuple) else output
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def layer_activation(forward, layer: torch.nn.Module, part: dict) -> torch.Tensor:
    """Output of `layer` (B, T, H) when `forward(input_ids=..., attention_mask=...)` runs."""
    with _capture(layer) as store:
        try:
            forward(input_ids=part["input_ids"], attention_mask=part["attention_mask"])
        except _Stop:
            pass
    if "h" not in store:
        raise LetheError("rmu: the steered layer did not run during the forward pass")
    return store["h"]


def control_vector(hidden: int, cfg: RMUConfig, like: torch.Tensor) -> torch.Tensor:
    """c·u (H,): u uniform on [0,1)^H normalised to unit length, seeded (paper's recipe)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    u = torch.rand(hidden, generator=gen)
    return (cfg.steering_coeff * u / u.norm()).to(device=like.device, dtype=like.dtype)


def masked_mse(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over unmasked tokens of ‖h − target‖²/H.

    h (B, T, H); target broadcastable to h; mask (B, T) with 1 on real tokens.
    """
    per_token = (h.float() - target.float()).pow(2).mean(-1)  # (B, T)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


@register("rmu", RMUConfig, needs_ref_model=True, needs_retain=True, prepare=rmu_prepare)
def rmu_loss(model, batch, cfg: RMUConfig, ref=None):
    """RMU: steer layer-ℓ activations on forget to c·u; keep them on retain (MSE)."""
    if ref is None:
        raise LetheError("rmu needs a reference model: build one with make_reference")
    layers = decoder_layers(model)
    layer_idx, _ = resolve_layers(len(layers), cfg)
    layer = layers[layer_idx]
    forget, retain = batch["forget"], part_of(batch, "retain", cfg.name)

    h_forget = layer_activation(model, layer, forget)  # (B, T, H)
    target = control_vector(h_forget.shape[-1], cfg, h_forget)  # (H,)
    forget_loss = masked_mse(h_forget, target, forget["attention_mask"])

    h_retain = layer_activation(model, layer, retain)  # (B, T, H)
    h_frozen = layer_activation(ref.forward, layer, retain)  # (B, T, H), no grad
    retain_loss = masked_mse(h_retain, h_frozen, retain["attention_mask"])
    loss = forget_loss + cfg.alpha * retain_loss
    return loss, {"forget_mse": forget_loss.item(), "retain_mse": retain_loss.item()}
