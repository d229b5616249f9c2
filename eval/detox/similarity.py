"""SIM (content preservation) and the sentence embedders that few-shot retrieval shares.

An *embedder* maps texts to L2-normalised vectors, ``encode(texts) -> (N, D) float32``, and has an
``identity`` string that changes whenever its vectors would (used to key on-disk caches):
- ``SentenceEmbedder``: a sentence-transformers model; the default ``minilm`` is the bundled
  all-MiniLM-L6-v2 (``lethe.loading.minilm_path()``);
- ``HashingEmbedder``: a hashed bag of lower-cased words. Deterministic, instant, no weights;
  good for tests and for retrieval by word overlap. Spelled ``hashing`` or ``hashing:DIM``.

SIM scorers (``score(texts, sources)``, each in [0, 1]):
- ``embedding``: cosine of the two embeddings, clipped below at 0 (a negative cosine means
  "nothing kept", and the joint scores multiply SIM by other scores); ``clip: false`` keeps the
  raw cosine, as PAN 2024's LaBSE SIM does;
- ``wieting``: the Wieting et al. subword-averaging SIM ParaDetox reports (wieting.py);
- ``bertscore``: BERTScore F1 (Zhang et al., 2020, eq. 1-3): greedy matching of contextual
  token embeddings, no idf weighting and no baseline rescaling.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from eval.detox.registry import Need, batches, register
from lethe.lm import pick_device
from lethe.errors import LetheError

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Bag of lower-cased words, each hashed (blake2b) into one of `dim` buckets, L2-normalised."""

    def __init__(self, dim: int = 1024):
        if dim < 1:
            raise LetheError(f"hashing embedder: dim must be positive, got {dim}")
        self.dim = dim
        self.identity = f"hashing:{dim}"

    def bucket(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)  # (N, D)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, self.bucket(word)] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class SentenceEmbedder:
    """A sentence-transformers model (hub id, local dir, or `minilm`), loaded on first use."""

    def __init__(self, model: str = "minilm", device: str = "auto", batch_size: int = 64):
        self.model_spec = model
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._identity = None

    @property
    def identity(self) -> str:
        if self._identity is None:
            from lethe.loading import resolve_model, weights_fingerprint

            src = resolve_model(self.model_spec)
            if src.kind == "dir":
                self._identity = f"st:{weights_fingerprint(src.path)}"
            else:
                self._identity = f"st:{self.model_spec}"
        return self._identity

    def _load(self):
        from lethe.loading import resolve_model

        src = resolve_model(self.model_spec)
        if src.kind not in ("dir", "hub"):
            raise LetheError(f"embedding model {self.model_spec} must be a sentence-transformers "
                             f"directory or hub id, not a {src.kind}")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(src.path, device=str(pick_device(self.device)))
        except OSError as err:
            raise LetheError(f"could not load embedding model {self.model_spec}: "
                             f"{str(err).splitlines()[0]} (pass a local path offline)") from None

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self._load()
        if not texts:
            return np.zeros((0, self._model.get_sentence_embedding_dimension()), np.float32)
        vecs = self._model.encode(list(texts), batch_size=self.batch_size,
                                  normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False)
        return vecs.astype(np.float32)  # (N, D)


def make_embedder(spec: str, device: str = "auto", batch_size: int = 64):
    """`hashing` / `hashing:DIM` -> HashingEmbedder; anything else -> SentenceEmbedder(spec)."""
    spec = str(spec)
    if spec == "hashing" or spec.startswith("hashing:"):
        dim = spec.split(":", 1)[1] if ":" in spec else "1024"
        if not dim.isdigit():
            raise LetheError(f"embedder {spec!r}: write hashing:DIM with an integer DIM")
        return HashingEmbedder(int(dim))
    return SentenceEmbedder(spec, device=device, batch_size=batch_size)


def _need_sources(texts, sources, what):
    if sources is None or len(sources) != len(texts):
        raise ValueError(f"{what} needs one source per text "
                         f"(got {0 if sources is None else len(sources)} for {len(texts)})")


class EmbeddingSimilarity:
    """SIM = max(0, cos(embed(text), embed(source))); with clip=False the cosine itself (PAN
    2024's LaBSE SIM, `1 - scipy.spatial.distance.cosine`, can be negative)."""

    def __init__(self, model: str = "minilm", device: str = "auto", batch_size: int = 64,
                 clip: bool = True):
        self.embedder = make_embedder(model, device, batch_size)
        self.clip = clip

    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        _need_sources(texts, sources, "embedding similarity")
        if not texts:
            return []
        a = self.embedder.encode(list(texts))  # (N, D), L2-normalised
        b = self.embedder.encode(list(sources))  # (N, D)
        cos = (a * b).sum(axis=1)
        if not self.clip:
            return [float(c) for c in cos]
        return [float(min(1.0, max(0.0, c))) for c in cos]


class BertScoreSimilarity:
    """BERTScore F1 of each text against its source (or reference)."""

    def __init__(self, model: str, layer: int = -1, device: str = "auto", batch_size: int = 32,
                 max_length: int = 256):
        self.model_spec = model
        self.layer = layer
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = self._tokenizer = None

    def _load(self):
        import transformers

        from lethe.loading import load_tokenizer, local_checkpoint

        path = local_checkpoint(self.model_spec)
        try:
            model = transformers.AutoModel.from_pretrained(path)
        except OSError as err:
            raise LetheError(f"could not load BERTScore model {self.model_spec}: "
                             f"{str(err).splitlines()[0]}") from None
        self._model = model.to(pick_device(self.device)).eval()
        self._tokenizer = load_tokenizer(self.model_spec)

    def token_embeddings(self, texts: list[str]) -> list[np.ndarray]:
        """One (T_i, H) array per text: normalised hidden states of its non-special tokens."""
        import torch

        if self._model is None:
            self._load()
        device = next(self._model.parameters()).device
        out = []
        for chunk in batches(list(texts), self.batch_size):
            enc = self._tokenizer(chunk, return_tensors="pt", padding=True, truncation=True,
                                  max_length=self.max_length, return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask").bool()
            enc = enc.to(device)
            with torch.no_grad():
                hidden = self._model(**enc, output_hidden_states=True).hidden_states[self.layer]
            hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu()  # (B, T, H)
            keep = enc["attention_mask"].cpu().bool() & ~special  # (B, T)
            out.extend(hidden[i][keep[i]].numpy() for i in range(hidden.shape[0]))
        return out

    def prf(self, texts: list[str], refs: list[str]) -> tuple[list[float], list[float],
                                                               list[float]]:
        """Precision, recall and F1 of each text against its reference."""
        hyp = self.token_embeddings(list(texts))
        ref = self.token_embeddings(list(refs))
        ps, rs, fs = [], [], []
        for h, r in zip(hyp, ref):
            if len(h) == 0 or len(r) == 0:
                ps.append(0.0), rs.append(0.0), fs.append(0.0)
                continue
            sim = h @ r.T  # (T_hyp, T_ref) cosines
            p = float(sim.max(axis=1).mean())  # each hypothesis token to its best reference token
            r_ = float(sim.max(axis=0).mean())  # each reference token to its best hypothesis token
            f = 2 * p * r_ / (p + r_) if p + r_ > 0 else 0.0
            ps.append(p), rs.append(r_), fs.append(f)
        return ps, rs, fs

    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        _need_sources(texts, sources, "BERTScore")
        if not texts:
            return []
        return [min(1.0, max(0.0, f)) for f in self.prf(texts, sources)[2]]


@register("sim", "embedding", EmbeddingSimilarity)
@dataclass(frozen=True)
class EmbeddingSimConfig:
    name: str = "embedding"
    model: str = "minilm"  # sentence-transformers model (hub id, dir, `minilm`) or hashing[:DIM]
    device: str = "auto"
    batch_size: int = 64
    clip: bool = True  # clip the cosine below at 0 (False: PAN 2024's raw LaBSE cosine)

    def needs(self) -> list[Need]:
        return [] if self.model.startswith("hashing") else [Need(self.model, "encoder")]


@register("sim", "bertscore", BertScoreSimilarity)
@dataclass(frozen=True)
class BertScoreConfig:
    name: str = "bertscore"
    model: str = ""  # any encoder (hub id or local dir), e.g. roberta-large (required)
    layer: int = -1  # which hidden state to match (-1 = last; BERTScore tunes this per model)
    device: str = "auto"
    batch_size: int = 32
    max_length: int = 256

    def __post_init__(self):
        if not self.model:
            raise ValueError("scorers.sim.model is required for bertscore (an encoder model)")

    def needs(self) -> list[Need]:
        return [Need(self.model, "encoder")]
