"""The logit lens: read a next-token distribution off any intermediate layer.

Where a model's blocks and final norm live (`LensLayout`) is also what ROME's edits need to
find the MLP they rewrite, so both the extraction attacks (eval/attacks) and the edits
(unlearn/rome) read it from here.

nostalgebraist (2020), used as a white-box extraction attack by Patil, Hase & Bansal (2024,
"Can Sensitive Information Be Deleted From LLMs?", Sec. 4): the hidden state after block `l`
at the last prompt position is passed through the model's own final norm and unembedding,

    D^(l) = softmax(W_U · norm_f(h^(l)))                                     (Patil et al., Eq. 3)

Two ways to number the layers a lens reads (`indexing`):
- "block": layer `l` is the output of block `l` (0-based), so the lens at the last layer
  equals the model's logits;
- "hidden_states": an index into transformers' `output_hidden_states` tuple, as the layer lists
  of Patil et al.'s code (Vaidehi99/InfoDeletionAttacks, `hidden_states[i]`): 0 is the
  embedding output (the input of block 0) and `i` ≥ 1 the output of block `i − 1`. Their
  `--layers_wb_attack 17 18` are blocks 16 and 17 here.
Negative numbers count from the end in both. Internally a lens point is a hidden-state index.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from lethe.errors import LetheError
from lethe.lm import encode_prompt, model_device, pad_id, pad_right


@dataclass(frozen=True)
class LensLayout:
    blocks: str  # the ModuleList of transformer blocks
    final_norm: str  # the norm applied before the unembedding


# model_type -> where its blocks and final norm live (the unembedding is always
# model.get_output_embeddings()).
LENS_LAYOUTS: dict[str, LensLayout] = {
    **{t: LensLayout("model.layers", "model.norm")
       for t in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text",
                 "olmo", "olmo2", "smollm3", "granite", "cohere", "phi3", "stablelm")},
    "phi": LensLayout("model.layers", "model.final_layernorm"),
    "gpt2": LensLayout("transformer.h", "transformer.ln_f"),
    "gptj": LensLayout("transformer.h", "transformer.ln_f"),
    "gpt_neo": LensLayout("transformer.h", "transformer.ln_f"),
    "falcon": LensLayout("transformer.h", "transformer.ln_f"),
    "bloom": LensLayout("transformer.h", "transformer.ln_f"),
    "gpt_neox": LensLayout("gpt_neox.layers", "gpt_neox.final_layer_norm"),
}


def get_module(model, name: str, what: str = "module"):
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise LetheError(f"{what} '{name}' not found in {type(model).__name__}; check the module "
                         f"name (model_type {getattr(model.config, 'model_type', '?')})") from None


def lens_layout(model, blocks: str | None = None, final_norm: str | None = None) -> LensLayout:
    """The layout for `model`, from its config's model_type unless both names are given."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    base = LENS_LAYOUTS.get(model_type)
    if base is None and (blocks is None or final_norm is None):
        raise LetheError(f"no logit-lens layout for model_type '{model_type}'; pass the block "
                         f"list and final norm module names (e.g. blocks='model.layers', "
                         f"final_norm='model.norm')")
    layout = LensLayout(blocks or base.blocks, final_norm or base.final_norm)
    get_module(model, layout.blocks, "block list")
    get_module(model, layout.final_norm, "final norm")
    return layout


def num_layers(model, layout: LensLayout) -> int:
    return len(get_module(model, layout.blocks))


def resolve_layers(layers: Sequence[int] | None, n_layers: int, what: str = "layer") \
        -> tuple[int, ...]:
    """Check and normalise layer numbers (negative ones count from the end); None = all."""
    if layers is None:
        return tuple(range(n_layers))
    out = []
    for layer in layers:
        if not -n_layers <= int(layer) < n_layers:
            raise LetheError(f"{what} {layer} is out of range: the model has {n_layers} layers "
                             f"(0..{n_layers - 1}, or negative from the end)")
        out.append(int(layer) % n_layers)
    if not out:
        raise LetheError(f"no {what}s chosen; name at least one")
    return tuple(out)


INDEXINGS = ("hidden_states", "block")


def hidden_state_points(layers: Sequence[int] | None, n_layers: int, indexing: str,
                        what: str = "layer") -> tuple[int, ...]:
    """Layer numbers in `indexing` -> hidden-state indices (0 = embeddings, l + 1 = output of
    block l); None = the output of every block."""
    if indexing == "block":
        return tuple(b + 1 for b in resolve_layers(layers, n_layers, what))
    if indexing != "hidden_states":
        raise LetheError(f"{what} indexing must be one of {', '.join(INDEXINGS)}, got "
                         f"{indexing!r}")
    if layers is None:
        return tuple(range(1, n_layers + 1))
    out = []
    for layer in layers:
        if not -(n_layers + 1) <= int(layer) <= n_layers:
            raise LetheError(f"{what} {layer} is out of range: the model has {n_layers + 1} "
                             f"hidden states (0 = embeddings .. {n_layers}, or negative from the "
                             f"end)")
        out.append(int(layer) % (n_layers + 1))
    if not out:
        raise LetheError(f"no {what}s chosen; name at least one")
    return tuple(out)


@contextmanager
def capture_hidden_states(model, layout: LensLayout, points: Sequence[int]) -> Iterator[dict]:
    """Record hidden states (B, T, D) at the given hidden-state indices during forward passes:
    point 0 is block 0's input, point i ≥ 1 block i − 1's output."""
    blocks = get_module(model, layout.blocks)
    store: dict[int, torch.Tensor] = {}
    handles = []
    for point in dict.fromkeys(points):
        if point == 0:
            def pre_hook(_mod, args, kwargs):
                store[0] = args[0] if args else kwargs["hidden_states"]
            handles.append(blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True))
            continue

        def hook(_mod, _inp, out, point=point):
            store[point] = out[0] if isinstance(out, tuple) else out
        handles.append(blocks[point - 1].register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture_blocks(model, layout: LensLayout, layers: Sequence[int]) -> Iterator[dict]:
    """Record the output hidden states (B, T, D) of the given blocks, keyed by block."""
    with capture_hidden_states(model, layout, [int(b) + 1 for b in layers]) as points:
        yield _BlockView(points)


class _BlockView:
    """The block-keyed view of a hidden-state store (block l = hidden state l + 1)."""

    def __init__(self, points: dict):
        self._points = points

    def __getitem__(self, block: int):
        return self._points[int(block) + 1]

    def __contains__(self, block) -> bool:
        return int(block) + 1 in self._points


def decode(model, layout: LensLayout, hidden: torch.Tensor) -> torch.Tensor:
    """Final norm + unembedding: (..., D) hidden states -> (..., V) logits."""
    norm = get_module(model, layout.final_norm)
    return model.get_output_embeddings()(norm(hidden))


def iter_prompt_lens(model, tok, prompts: Sequence[str | Sequence[int]], layers: Sequence[int],
                     *, layout: LensLayout | None = None, batch_size: int = 16,
                     indexing: str = "block"):
    """Yield (start index, lens logits (L, b, V) at each prompt's last token) batch by batch.
    A prompt is a string (encoded with the tokenizer's special tokens) or token ids; `layers`
    are block numbers, or hidden-state indices with indexing="hidden_states"."""
    layout = layout or lens_layout(model)
    device = model_device(model)
    points = [int(x) + 1 for x in layers] if indexing == "block" else [int(x) for x in layers]
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        seqs = [encode_prompt(tok, p) if isinstance(p, str) else list(p) for p in chunk]
        ids, mask = pad_right(seqs, pad_id(tok), device)
        last = mask.sum(1) - 1  # (b,) position of each prompt's last token
        with torch.no_grad(), capture_hidden_states(model, layout, points) as store:
            model(input_ids=ids, attention_mask=mask)
            rows = torch.arange(len(chunk), device=device)
            hidden = torch.stack([store[p][rows, last] for p in points])  # (L, b, D)
            yield start, decode(model, layout, hidden).float()  # (L, b, V)
