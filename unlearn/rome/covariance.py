"""C = E[k kᵀ]: the uncentred second moment of the down-projection's inputs over a corpus.

ROME Eq. 2 (Meng et al. 2022) weighs the rank-one update by C⁻¹ so that keys the layer sees
often (large under C) are disturbed least. C is estimated from every token of a text corpus
(ROME: 100,000 Wikipedia texts) and is expensive, so it is cached on disk under
`lethe.loading.cache_dir()/covariance/<key>.pt`, keyed by:
- the model: its checkpoint directory's weights_fingerprint, or hub id + revision, or (built
  in memory) a hash of every tensor except the edited module's own — its weight does not
  influence its inputs, so a second edit of the same layer still finds the statistics;
- the module name (hence the layer), the corpus (texts hash / file fingerprint / hub id,
  config, split, column), the number of texts, the truncation length and the dtype.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from lethe.lm import model_device, pad_id, pad_right
from lethe.errors import LetheError
from lethe.loading import TABLE_FORMATS, cache_dir, load_table, looks_like_path, \
    weights_fingerprint
from unlearn.rome.keys import capture_input

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


@dataclass(frozen=True)
class Covariance:
    matrix: torch.Tensor  # (d_ff, d_ff) on the CPU, cfg.cov_dtype
    path: Path  # the cache file
    cache_hit: bool
    n_tokens: int  # how many key vectors were averaged
    n_texts: int


# ---------------------------------------------------------------------------------------------
# cache keys


def state_hash(model, exclude_prefix: str) -> str:
    """sha256 of every state-dict tensor (name, dtype, shape, bytes) outside `exclude_prefix`."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if name.startswith(exclude_prefix + "."):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def model_cache_identity(model, module_name: str) -> dict:
    path = str(getattr(model.config, "_name_or_path", "") or "")
    p = Path(path).expanduser() if path else None
    if p is not None and p.is_dir() and any(f.suffix in WEIGHT_SUFFIXES for f in p.iterdir()):
        return {"checkpoint": str(p.resolve()), "weights": weights_fingerprint(str(p))}
    if path and not looks_like_path(path) and not (p and p.exists()):
        return {"hub": path, "revision": getattr(model.config, "_commit_hash", None)}
    return {"state_sha256": state_hash(model, module_name)}


def _table_file(source: Path, config: str | None, split: str) -> Path | None:
    base = source / config if config else source
    for ext in TABLE_FORMATS:
        if (base / f"{split}{ext}").is_file():
            return base / f"{split}{ext}"
    return None


def corpus_identity(corpus, cfg) -> dict:
    if isinstance(corpus, (list, tuple)):
        h = hashlib.sha256("\x00".join(corpus[:cfg.cov_samples]).encode()).hexdigest()[:20]
        return {"texts_sha256": h}
    source = Path(str(corpus)).expanduser()
    ident = {"column": cfg.cov_column}
    target = source if source.is_file() else (
        _table_file(source, cfg.cov_config, cfg.cov_split) if source.is_dir() else None)
    if target is not None:
        return {**ident, "file": str(target.resolve()), "fingerprint": weights_fingerprint(
            str(target))}
    return {**ident, "hub": str(corpus), "config": cfg.cov_config, "split": cfg.cov_split}


def cache_path(model, module_name: str, corpus, cfg) -> tuple[Path, dict]:
    meta = {"model": model_cache_identity(model, module_name), "module": module_name,
            "corpus": corpus_identity(corpus, cfg), "samples": cfg.cov_samples,
            "max_length": cfg.cov_max_length, "dtype": cfg.cov_dtype}
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / "covariance" / f"{key}.pt", meta


# ---------------------------------------------------------------------------------------------
# computing


def corpus_texts(corpus, cfg) -> list[str]:
    """The first cfg.cov_samples texts of `corpus` (a list of texts or a dataset source)."""
    if corpus is None:
        raise LetheError("covariance needs a corpus: pass texts or a dataset source to "
                         "edit_model, or set EditConfig.cov_dataset (or use_covariance: false)")
    if isinstance(corpus, (list, tuple)):
        texts = list(corpus)
    else:
        ds = load_table(str(corpus), config=cfg.cov_config, split=cfg.cov_split,
                        columns=(cfg.cov_column,))
        texts = ds.select(range(min(len(ds), cfg.cov_samples)))[cfg.cov_column]
    texts = [t for t in texts[:cfg.cov_samples] if isinstance(t, str) and t.strip()]
    if not texts:
        raise LetheError("the covariance corpus has no non-empty texts")
    if len(texts) < cfg.cov_samples:
        log.warning("covariance corpus has %d texts (cov_samples=%d asked); using all of them",
                    len(texts), cfg.cov_samples)
    return texts


@torch.no_grad()
def compute_covariance(model, tok, module, texts: Sequence[str], cfg) -> tuple[torch.Tensor, int]:
    """(C (d_ff, d_ff) on the CPU, number of tokens): C = (1/N) Σ_tokens k kᵀ, padding excluded."""
    dtype = torch.float64 if cfg.cov_dtype == "float64" else torch.float32
    device = model_device(model)
    total, n = None, 0
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(texts), cfg.cov_batch_size), desc="covariance",
                          unit="batch", leave=False):
            chunk = texts[start:start + cfg.cov_batch_size]
            enc = tok(list(chunk), truncation=True, max_length=cfg.cov_max_length)
            seqs = [ids[:cfg.cov_max_length] for ids in enc["input_ids"]]
            seqs = [s for s in seqs if s]
            if not seqs:
                continue
            ids, mask = pad_right(seqs, pad_id(tok), device)
            with capture_input(module) as store:
                model(input_ids=ids, attention_mask=mask)
            keys = store["in"][mask.bool()].to(dtype)  # (tokens, d_ff)
            outer = keys.T @ keys  # (d_ff, d_ff)
            total = outer if total is None else total + outer
            n += keys.shape[0]
    finally:
        model.train(was_training)
    if n == 0:
        raise LetheError("the covariance corpus produced no tokens")
    return (total / n).cpu(), n


def get_covariance(model, tok, module_name: str, corpus, cfg) -> Covariance:
    """C for `module_name`, from the cache when there, else computed and cached atomically."""
    path, meta = cache_path(model, module_name, corpus, cfg)
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            log.info("covariance cache hit: %s", path)
            return Covariance(blob["cov"], path, True, int(blob["n_tokens"]),
                              int(blob["n_texts"]))
        except Exception as err:  # a torn or foreign file: recompute it
            log.warning("covariance cache %s unreadable (%s); recomputing", path, err)
    texts = corpus_texts(corpus, cfg)
    cov, n_tokens = compute_covariance(model, tok, model.get_submodule(module_name), texts, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"cov": cov, "n_tokens": n_tokens, "n_texts": len(texts),
                    "meta": json.dumps(meta)}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("covariance of %s from %d tokens cached in %s", module_name, n_tokens, path)
    return Covariance(cov, path, False, n_tokens, len(texts))
