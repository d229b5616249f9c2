"""A classifier that is a small head on a frozen sentence embedder (an "embedding head").

    P(class | text) = softmax(W e(text) + b),   e = the embedder's L2-normalised vector (D,)

W (C, D) and b (C,) are fitted by `detox train-classifier` (kind: embedding_head, logistic
regression); the embedder is one `eval.detox.similarity.make_embedder` understands (`minilm`,
the bundled all-MiniLM-L6-v2, or `hashing:DIM`). Such a classifier ships in a few kilobytes
beside the embedder the package already has, so it works offline without a model download.

A head directory holds `head.json` ({"format": "lethe-embedding-head", "embedder": ...,
"labels": [...], "dim": D}) and `head.safetensors` (tensors `weight` (C, D), `bias` (C,)).
The `classifier` STA scorer takes one wherever it takes a Hugging Face classifier; the alias
`paradetox` names the head shipped in eval/detox/data/paradetox_toxicity (ParaDetox toxic
sentences vs their human neutral rewrites, the held-out slice left out; its model card is
the README.md there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from lethe.errors import LetheError

HEAD_FORMAT = "lethe-embedding-head"
SHIPPED_HEADS = {"paradetox": "paradetox_toxicity"}  # alias -> directory under eval/detox/data


def head_dir(spec: str) -> Path | None:
    """The head directory `spec` names (an alias or a path holding head.json), else None."""
    if spec in SHIPPED_HEADS:
        return Path(__file__).resolve().parent / "data" / SHIPPED_HEADS[spec]
    path = Path(str(spec)).expanduser()
    return path if (path / "head.json").is_file() else None


def read_meta(path: Path) -> dict:
    """head.json of a head directory, checked: format, embedder, labels, dim."""
    try:
        meta = json.loads((path / "head.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise LetheError(f"classifier head {path}: cannot read head.json ({err}); retrain it "
                         f"with detox train-classifier") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise LetheError(f"classifier head {path}: head.json is not a {HEAD_FORMAT} file")
    labels = meta.get("labels")
    if not (isinstance(labels, list) and len(labels) >= 2 and isinstance(meta.get("embedder"), str)
            and isinstance(meta.get("dim"), int)):
        raise LetheError(f"classifier head {path}: head.json needs 'embedder', 'dim' and at least "
                         f"two 'labels'")
    return meta


def save_head(path: Path, weight: np.ndarray, bias: np.ndarray, embedder: str,
              labels: Sequence[str], extra: dict | None = None) -> None:
    """Write a head directory (into `path`, which the caller swaps in atomically)."""
    from safetensors.numpy import save_file

    weight = np.asarray(weight, np.float32)
    bias = np.asarray(bias, np.float32)
    if weight.ndim != 2 or weight.shape[0] != len(labels) or bias.shape != (len(labels),):
        raise ValueError(f"head weight {weight.shape} / bias {bias.shape} do not fit "
                         f"{len(labels)} labels")
    path.mkdir(parents=True, exist_ok=True)
    save_file({"weight": weight, "bias": bias}, str(path / "head.safetensors"))
    meta = {"format": HEAD_FORMAT, "embedder": embedder, "labels": list(labels),
            "dim": int(weight.shape[1]), **(extra or {})}
    (path / "head.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


class EmbeddingHead:
    """Class probabilities of a head directory; the embedder loads on the first call."""

    def __init__(self, spec: str, device: str = "auto", batch_size: int = 64):
        path = head_dir(spec)
        if path is None or not path.is_dir():
            raise LetheError(f"classifier head {spec}: no head.json there")
        self.spec = spec
        self.path = path
        self.meta = read_meta(path)
        self.labels = list(self.meta["labels"])
        self.device = device
        self.batch_size = batch_size
        self._embedder = self._weight = self._bias = None

    def _load(self):
        from eval.detox.similarity import make_embedder

        self._load_tensors()
        self._embedder = make_embedder(self.meta["embedder"], self.device, self.batch_size)

    def _load_tensors(self):
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(self.path / "head.safetensors"))
        except (OSError, ValueError) as err:
            raise LetheError(f"classifier head {self.spec}: cannot read head.safetensors "
                             f"({err})") from None
        w, b = tensors.get("weight"), tensors.get("bias")
        c, d = len(self.labels), self.meta["dim"]
        if w is None or b is None or w.shape != (c, d) or b.shape != (c,):
            raise LetheError(f"classifier head {self.spec}: weight/bias shapes "
                             f"{None if w is None else w.shape}/{None if b is None else b.shape} "
                             f"do not fit {c} labels x dim {d}; retrain it")
        self._weight, self._bias = w.astype(np.float32), b.astype(np.float32)

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        """(N, C) class probabilities."""
        if self._embedder is None:
            self._load()
        if not len(texts):
            return np.zeros((0, len(self.labels)), np.float32)
        emb = np.asarray(self._embedder.encode(list(texts)), np.float32)  # (N, D)
        if emb.shape[1] != self._weight.shape[1]:
            raise LetheError(f"classifier head {self.spec}: its embedder gives {emb.shape[1]}-d "
                             f"vectors, the head expects {self._weight.shape[1]}")
        logits = emb @ self._weight.T + self._bias  # (N, C)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def verify_head(spec: str) -> tuple[dict, str]:
    """(head.json, a one-line summary) after checking the files and the tensor shapes;
    LetheError otherwise. Loads no embedder (the preflight checks that separately)."""
    head = EmbeddingHead(spec)
    head._load_tensors()
    return head.meta, (f"embedding head on {head.meta['embedder']}, labels "
                       f"{', '.join(head.labels)}")
