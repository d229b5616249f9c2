"""Weight quantization as an attack on unlearning: round-to-nearest (RTN) per group, in torch.

Zhang et al. (ICLR 2025, "Catastrophic Failure of LLM Unlearning via Quantization") load
unlearned models in 4 and 8 bits and find the "forgotten" knowledge back: unlearning with a
utility constraint moves each weight by much less than one quantization step, so the unlearned
and the target weights round to the same grid point. Their released code quantizes through
bitsandbytes (`BitsAndBytesConfig(load_in_4bit=True)` / `load_in_8bit=True`, defaults: 4-bit
absmax blocks of 64 weights, 8-bit LLM.int8 rows); their analysis is of round-to-nearest.

Here the same experiment runs on any machine: every weight matrix of a linear layer (not the
embeddings, not the output head: bitsandbytes, GPTQ and AWQ keep those in high precision too)
is split, row by row, into groups of `group_size` consecutive input weights, and each group is
rounded to its own grid (weight-only "fake" quantization: the model keeps its dtype, the values
are the dequantized ones, so every metric runs unchanged):

- symmetric (default): q = clamp(round(w / s), −(2^{b−1} − 1), 2^{b−1} − 1), ŵ = s·q,
  s = max|w_group| / (2^{b−1} − 1). The grid is centred on 0, as in the absmax RTN of
  Zhang et al.'s analysis and in bitsandbytes' absmax blocks; zero stays exactly zero.
- asymmetric: s = (max − min) / (2^b − 1), z = round(−min / s), q = clamp(round(w / s) + z,
  0, 2^b − 1), ŵ = s·(q − z): one more level and no range wasted on a lopsided group.

Either way |ŵ − w| ≤ s/2 inside the grid's range ("half a quantization step"), which is what
makes unlearning updates smaller than s/2 vanish. Group size 128 is the usual w4g128 setting of
RTN, GPTQ and AWQ; a row shorter than a group is one group.

With `backend="bnb"` the checkpoint is instead loaded by transformers through bitsandbytes, as
Zhang et al. did (needs the package and a CUDA GPU).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

import torch

from lethe.errors import LetheError

log = logging.getLogger(__name__)

BITS = (4, 8)
SCHEMES = ("sym", "asym")
BACKENDS = ("rtn", "bnb")


@dataclass(frozen=True)
class QuantSpec:
    """One quantization of a checkpoint."""

    bits: int  # 4 or 8
    group_size: int = 128  # input weights per group (rtn); a shorter row is one group
    scheme: str = "sym"  # "sym" (absmax, grid centred on 0) | "asym" (min-max, zero point)
    backend: str = "rtn"  # "rtn" (plain torch, any device) | "bnb" (bitsandbytes, CUDA)

    def __post_init__(self):
        if self.bits not in BITS:
            raise LetheError(f"--bits {self.bits}: quantization supports 4 and 8 bits")
        if self.group_size < 1:
            raise LetheError(f"--group-size must be at least 1, got {self.group_size}")
        if self.scheme not in SCHEMES:
            raise LetheError(f"--quant-scheme {self.scheme!r}: use sym or asym")
        if self.backend not in BACKENDS:
            raise LetheError(f"--quant-backend {self.backend!r}: use rtn or bnb")

    @property
    def label(self) -> str:
        return f"int{self.bits}" if self.backend == "rtn" else f"bnb{self.bits}"


def qrange(bits: int, scheme: str) -> tuple[int, int]:
    """The integer levels: symmetric ±(2^{b−1} − 1) (int8: ±127), asymmetric 0..2^b − 1."""
    if scheme == "sym":
        top = 2 ** (bits - 1) - 1
        return -top, top
    return 0, 2 ** bits - 1


def _quantize_groups(g: torch.Tensor, bits: int, scheme: str) -> tuple[torch.Tensor, torch.Tensor]:
    """g (..., G) float32 groups -> (dequantized (..., G), step s (..., 1))."""
    qmin, qmax = qrange(bits, scheme)
    tiny = torch.finfo(torch.float32).tiny
    if scheme == "sym":
        s = (g.abs().amax(-1, keepdim=True) / qmax).clamp_min(tiny)  # (..., 1)
        return torch.clamp(torch.round(g / s), qmin, qmax) * s, s
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)  # (..., 1)
    s = ((hi - lo) / qmax).clamp_min(tiny)
    z = torch.round(-lo / s)
    return (torch.clamp(torch.round(g / s) + z, qmin, qmax) - z) * s, s


def rtn_quantize(w: torch.Tensor, bits: int, group_size: int = 128,
                 scheme: str = "sym") -> tuple[torch.Tensor, torch.Tensor]:
    """Round-to-nearest fake quantization of a (out, in) matrix, groups along `in`.

    Returns (ŵ with w's shape and dtype, the step s of each weight's group as (out, in)).
    """
    if w.dim() != 2:
        raise LetheError(f"rtn_quantize expects a 2-D weight, got shape {tuple(w.shape)}")
    x = w.detach().float()  # (out, in)
    n_in = x.shape[1]
    g = min(group_size, n_in)
    full = (n_in // g) * g
    parts, steps = [], []
    if full:
        q, s = _quantize_groups(x[:, :full].reshape(x.shape[0], -1, g), bits, scheme)
        parts.append(q.reshape(x.shape[0], full))  # (out, full)
        steps.append(s.expand(-1, -1, g).reshape(x.shape[0], full))
    if full < n_in:  # the row's tail is a group of its own
        q, s = _quantize_groups(x[:, full:], bits, scheme)
        parts.append(q)
        steps.append(s.expand(-1, n_in - full))
    return torch.cat(parts, 1).to(w.dtype), torch.cat(steps, 1)


def quantizable(model) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every linear layer whose weight is quantized: nn.Linear and GPT-2's
    Conv1D, except the output head (the unembedding), which weight-only schemes keep."""
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings()
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Linear, Conv1D)) and m is not head]


@torch.no_grad()
def quantize_model_(model, spec: QuantSpec) -> dict:
    """RTN-quantize `model`'s linear weights in place; returns what was done (JSON-able)."""
    if spec.backend != "rtn":
        raise LetheError(f"quantize_model_ does RTN only; backend {spec.backend} quantizes "
                         f"while loading (load_quantized)")
    from transformers.pytorch_utils import Conv1D

    modules = quantizable(model)
    if not modules:
        raise LetheError(f"{type(model).__name__} has no linear layer to quantize")
    n_params, worst = 0, 0.0
    for _, module in modules:
        transposed = isinstance(module, Conv1D)  # Conv1D stores (in, out)
        w = module.weight.T if transposed else module.weight  # (out, in)
        q, s = rtn_quantize(w, spec.bits, spec.group_size, spec.scheme)
        worst = max(worst, float(((q.float() - w.float()).abs() / s).max()))
        module.weight.copy_(q.T if transposed else q)
        n_params += w.numel()
    log.info("quantized %d matrices (%d weights) to %s", len(modules), n_params, spec.label)
    return {"backend": "rtn", "bits": spec.bits, "group_size": spec.group_size,
            "scheme": spec.scheme, "matrices": len(modules), "weights": n_params,
            "max_error_in_steps": worst}


def bnb_problem() -> str | None:
    """Why the bitsandbytes backend cannot run here (None when it can)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return "the bitsandbytes backend needs the bitsandbytes package (pip install " \
               "bitsandbytes); use --quant-backend rtn"
    if not torch.cuda.is_available():
        return "the bitsandbytes backend needs a CUDA GPU; use --quant-backend rtn"
    return None


def load_quantized(spec: str, quant: QuantSpec):
    """`spec` loaded through bitsandbytes in `quant.bits` bits (Zhang et al.'s setting:
    transformers' BitsAndBytesConfig defaults), on the GPU, in eval mode."""
    problem = bnb_problem()
    if problem:
        raise LetheError(problem)
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from lethe.loading import local_checkpoint

    config = BitsAndBytesConfig(load_in_8bit=quant.bits == 8, load_in_4bit=quant.bits == 4)
    model = AutoModelForCausalLM.from_pretrained(local_checkpoint(spec),
                                                 quantization_config=config, device_map="auto")
    return model.eval()
