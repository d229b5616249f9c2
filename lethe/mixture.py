"""Logit mixtures of two causal LMs: Who's Harry Potter's generic predictions at inference time.

Eldan & Russinovich (2023, arXiv:2310.02238, Eq. (G)): with v_b the baseline's and v_r the
"reinforced" model's logits (the baseline fine-tuned further on the forget text),

    v_generic = v_b − α · ReLU(v_r − v_b)                                   (..., V)

MUSE evaluates WHP this way (swj0419/muse_bench baselines/baselines/whos_harry_potter.py,
`WHPModelForCausalLM`): every forward pass runs both models and returns the mixed logits, and
generation decodes from them. `LogitMixture` is that model for Lethe's one adapter
(`lethe.lm.LM`): scoring reads the mixed logits of `forward`; `generate` runs the baseline's own
generation (its KV cache, padding and stopping) with a logits processor that mixes in the
reinforced model's next-token logits first, before any temperature/top-k/top-p warping.

A mixture is saved as a directory (`save_pretrained`):

    whp_mixture.json   {"format": "lethe.logit-mixture/1", "kind": "whp", "alpha": α,
                        "baseline": <model spec or "baseline">, "reinforced": "reinforced"}
    config.json, tokenizer files   (the baseline's: the directory reads like a checkpoint)
    reinforced/        the reinforced checkpoint
    baseline/          only when the baseline cannot be named by a path or hub id

and `lethe.loading.load_model` loads such a directory as a `LogitMixture`, so `unlearn eval DIR`
and the report after `unlearn run` evaluate it like any checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lethe.errors import LetheError

MIXTURE_FILE = "whp_mixture.json"
FORMAT = "lethe.logit-mixture/1"


def generic_logits(base_logits: torch.Tensor, reinforced_logits: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    """Eq. (G): v_b − α·ReLU(v_r − v_b). Both (..., V); returns (..., V) in float32."""
    base, reinforced = base_logits.float(), reinforced_logits.float()
    return base - alpha * torch.relu(reinforced - base)


class MixtureLogitsProcessor:
    """Turns the baseline's next-token scores (B, V) into Eq. (G)'s generic scores.

    The reinforced model keeps its own KV cache for one `generate` call: the first call reads
    the prompt, every later one only the tokens added since (without it every step re-read the
    whole sequence, O(T²): WHP's VerbMem on SmolLM2-135M took over 6 minutes against 24 s for
    a plain checkpoint). A call whose sequence is not the continuation of the last one starts
    over. `prompt_mask` (B, T0) is the prompt's
    attention mask (left padding); tokens generated after it are real. Without it, leading
    `pad_token_id`s are taken as padding. A transformers logits processor (a callable
    (input_ids, scores) -> scores); usable in `model.generate(logits_processor=[...])`.
    """

    def __init__(self, reinforced: torch.nn.Module, alpha: float = 1.0,
                 pad_token_id: int | None = None, prompt_mask: torch.Tensor | None = None):
        self.reinforced, self.alpha, self.pad_token_id = reinforced, alpha, pad_token_id
        self.prompt_mask = prompt_mask
        self._cache, self._seen = None, None  # the reinforced model's cache; the ids it read
        self._cache_name: str | None = None  # generate's name for it (looked up on first use)

    def _mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.prompt_mask is not None:
            new = input_ids.shape[1] - self.prompt_mask.shape[1]
            ones = torch.ones((input_ids.shape[0], new), dtype=torch.long,
                              device=input_ids.device)
            return torch.cat([self.prompt_mask.to(input_ids.device).long(), ones], dim=1)
        if self.pad_token_id is None:
            return torch.ones_like(input_ids)
        return ((input_ids != self.pad_token_id).cumsum(-1) > 0).long()  # (B, T)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        from lethe.kvcache import cache_kwarg

        mask = self._mask(input_ids)  # (B, T)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        seen, start = self._seen, 0  # _seen is set exactly when a cache is kept
        if (seen is not None and seen.shape[0] == input_ids.shape[0]
                and seen.shape[1] < input_ids.shape[1]
                and torch.equal(input_ids[:, :seen.shape[1]], seen)):
            start = seen.shape[1]  # a continuation: read only the new tokens
        if start and self._cache_name is None:  # inspect.signature once, not every step
            self._cache_name = cache_kwarg(self.reinforced)
        kwargs = {self._cache_name: self._cache} if start else {}
        with torch.no_grad():
            out = self.reinforced(input_ids=input_ids[:, start:], attention_mask=mask,
                                  position_ids=positions[:, start:], use_cache=True, **kwargs)
        self._cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        self._seen = input_ids.detach().clone() if self._cache is not None else None
        v_r = out.logits[:, -1, :]  # (B, V)
        return generic_logits(scores, v_r, self.alpha).to(scores.dtype)


class LogitMixture(torch.nn.Module):
    """Inference-time WHP: `forward` returns Eq. (G)'s logits; `generate` decodes from them.

    `baseline_spec` names the baseline for `save_pretrained` (a checkpoint path or hub id);
    without a loadable one the baseline is saved as a copy.
    """

    def __init__(self, baseline: torch.nn.Module, reinforced: torch.nn.Module,
                 alpha: float = 1.0, baseline_spec: str | None = None):
        super().__init__()
        self.baseline, self.reinforced, self.alpha = baseline, reinforced, float(alpha)
        self.baseline_spec = baseline_spec
        self.config = baseline.config  # what the adapter reads (max positions, model_type)
        self.generation_config = getattr(baseline, "generation_config", None)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        from transformers.modeling_outputs import CausalLMOutput

        kwargs.pop("labels", None)
        kwargs["use_cache"] = False  # the mixture keeps no cache of its own
        v_b = self.baseline(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits
        v_r = self.reinforced(input_ids=input_ids, attention_mask=attention_mask,
                              **kwargs).logits
        return CausalLMOutput(logits=generic_logits(v_b, v_r, self.alpha))

    def generate(self, input_ids, attention_mask=None, generation_config=None, **kwargs):
        """The baseline's `generate` with the mixture applied to raw logits, then the config's
        temperature / top-k / top-p (moved behind the mixture: transformers would apply its
        own warpers first)."""
        import copy

        from transformers import (LogitsProcessorList, TemperatureLogitsWarper,
                                  TopKLogitsWarper, TopPLogitsWarper)

        config = copy.deepcopy(generation_config or self.baseline.generation_config)
        mixers = [MixtureLogitsProcessor(self.reinforced, self.alpha, prompt_mask=attention_mask)]
        if config.do_sample:
            t, k, p = config.temperature, config.top_k, config.top_p
            if t is not None and t != 1.0:
                mixers.append(TemperatureLogitsWarper(t))
            if k:
                mixers.append(TopKLogitsWarper(k))
            if p is not None and p < 1.0:
                mixers.append(TopPLogitsWarper(p))
            config.temperature, config.top_k, config.top_p = 1.0, None, 1.0
        mixers += list(kwargs.pop("logits_processor", None) or [])
        return self.baseline.generate(input_ids=input_ids, attention_mask=attention_mask,
                                      generation_config=config,
                                      logits_processor=LogitsProcessorList(mixers), **kwargs)

    def save_pretrained(self, path, **kwargs) -> None:
        """The directory format of the module docstring (`kwargs` go to the checkpoints)."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.reinforced.save_pretrained(out / "reinforced", **kwargs)
        baseline = _nameable(self.baseline_spec)
        if baseline is None:
            self.baseline.save_pretrained(out / "baseline", **kwargs)
            baseline = "baseline"
        self.baseline.config.save_pretrained(out)
        info = {"format": FORMAT, "kind": "whp", "alpha": self.alpha, "baseline": baseline,
                "reinforced": "reinforced"}
        (out / MIXTURE_FILE).write_text(json.dumps(info, indent=1) + "\n")


def _nameable(spec: str | None) -> str | None:
    """An absolute checkpoint path or a hub id that names the baseline, else None."""
    if not spec:
        return None
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return str(path.resolve())
    if not path.exists() and spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return spec  # a hub id (org/name)
    return None


def is_mixture(path) -> bool:
    return (Path(path) / MIXTURE_FILE).is_file()


def mixture_info(path) -> dict:
    """The parsed whp_mixture.json of a mixture directory (one-line errors)."""
    file = Path(path) / MIXTURE_FILE
    try:
        info = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise LetheError(f"{file} does not load ({err}); rerun unlearn run to rewrite it") \
            from None
    if info.get("format") != FORMAT or not {"alpha", "baseline", "reinforced"} <= set(info):
        raise LetheError(f"{file} is not a {FORMAT} description (needs alpha, baseline and "
                         f"reinforced)")
    return info


def member_spec(path, name: str) -> str:
    """A member of a mixture directory: a subdirectory of it, else a spec as written."""
    local = Path(path) / name
    return str(local) if local.is_dir() else name


def load_mixture(path, *, load) -> LogitMixture:
    """The `LogitMixture` a directory describes; `load(spec)` loads each member model."""
    info = mixture_info(path)
    baseline_spec = member_spec(path, info["baseline"])
    baseline = load(baseline_spec)
    reinforced = load(member_spec(path, info["reinforced"]))
    return LogitMixture(baseline, reinforced, info["alpha"], baseline_spec=baseline_spec)
