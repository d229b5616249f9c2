"""SIM by Wieting et al.'s subword-averaging paraphrase model, the SIM ParaDetox reports.

ParaDetox's J (Logacheva et al. 2022; s-nlp/paradetox evaluation_detox/metric_tools/
content_similarity.py `wieting_sim`, wieting_similarity/similarity_evaluator.py,
sim_models.py, sim_utils.py) embeds each sentence as the mean of its subword embeddings and
takes the cosine of the two embeddings. Per sentence, as that code does:

    lower-case -> Treebank word tokens joined by spaces -> SentencePiece pieces -> the pieces'
    rows in the model's vocabulary (pieces not in it, and the row with index 0, are skipped:
    the code tests `if emb:`) -> none left: the 'UUUNKKK' row -> the mean of the embeddings

and SIM = cos(e(source), e(rewrite)), not clipped (it can be negative).

The model is not on the Hugging Face hub: it is the pair of files the ParaDetox scripts read
(`sim.pt`, a torch pickle {'state_dict': {'embedding.weight': (V, d)}, 'vocab_words':
{piece: row}, 'args': ...}, and the SentencePiece model `sim.sp.30k.model`), distributed from
style.cs.umass.edu. `model` is the directory holding them (or set `model_file` / `sp_file`).
Needs the `sentencepiece` package; nltk (a rouge-score dependency) gives the Treebank
tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.detox.registry import Need, batches, register
from lethe.errors import LetheError

UNKNOWN = "UUUNKKK"


class WietingSimilarity:
    """SIM = cos(mean subword embedding of the source, of the rewrite); loaded on first use."""

    def __init__(self, model: str, model_file: str = "sim.pt",
                 sp_file: str = "sim.sp.30k.model", batch_size: int = 32):
        self.model, self.model_file, self.sp_file = model, model_file, sp_file
        self.batch_size = batch_size
        self._emb = self._vocab = self._sp = self._words = None

    def paths(self) -> tuple[Path, Path]:
        root = Path(self.model).expanduser()
        return root / self.model_file, root / self.sp_file

    def _load(self):
        import argparse

        import torch

        weights, pieces = self.paths()
        for path in (weights, pieces):
            if not path.is_file():
                raise LetheError(f"Wieting SIM: {path} not found; scorers.sim.model must be the "
                                 f"directory with {self.model_file} and {self.sp_file} (the "
                                 f"ParaDetox SIM model, from style.cs.umass.edu)")
        try:
            import sentencepiece
        except ImportError:
            raise LetheError("the wieting SIM scorer needs sentencepiece; pip install "
                             "sentencepiece") from None
        from nltk.tokenize import TreebankWordTokenizer

        # the file pickles its training arguments as an argparse.Namespace: allow that class
        # only, never arbitrary code
        with torch.serialization.safe_globals([argparse.Namespace]):
            blob = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            self._emb = blob["state_dict"]["embedding.weight"].float().numpy()  # (V, d)
            self._vocab = dict(blob["vocab_words"])
        except (KeyError, TypeError) as err:
            raise LetheError(f"{weights} is not a Wieting SIM model (needs state_dict."
                             f"embedding.weight and vocab_words; missing {err})") from None
        self._sp = sentencepiece.SentencePieceProcessor()
        self._sp.Load(str(pieces))
        self._words = TreebankWordTokenizer()

    def rows(self, sentence: str) -> list[int]:
        """The vocabulary rows one sentence is averaged over (the reference's Example)."""
        if self._sp is None:
            self._load()
        text = " ".join(self._words.tokenize(sentence.lower()))
        pieces = " ".join(self._sp.EncodeAsPieces(text)).strip().lower()
        rows = [self._vocab[w] for w in pieces.split() if self._vocab.get(w)]
        return rows or [self._vocab[UNKNOWN]]

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, d) mean subword embeddings."""
        if self._emb is None:
            self._load()
        return np.stack([self._emb[self.rows(t)].mean(axis=0) for t in texts])

    def score(self, texts: list[str], sources: list[str] | None = None) -> list[float]:
        if sources is None or len(sources) != len(texts):
            raise ValueError(f"Wieting SIM needs one source per text (got "
                             f"{0 if sources is None else len(sources)} for {len(texts)})")
        out: list[float] = []
        for pair in batches(list(zip(sources, texts)), self.batch_size):
            a = self.embed([s for s, _ in pair]).astype(np.float64)  # (b, d)
            b = self.embed([t for _, t in pair]).astype(np.float64)
            # torch.nn.CosineSimilarity (eps 1e-8), as the reference's scoring_function
            norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-8)
            out.extend(float(c) for c in (a * b).sum(axis=1) / norms)
        return out


@register("sim", "wieting", WietingSimilarity)
@dataclass(frozen=True)
class WietingConfig:
    name: str = "wieting"
    model: str = ""  # directory with the SIM model and its SentencePiece model (required)
    model_file: str = "sim.pt"  # the torch file in it (ParaDetox's scripts: im.pt / sim.pt)
    sp_file: str = "sim.sp.30k.model"  # the SentencePiece model in it
    batch_size: int = 32

    def __post_init__(self):
        if not self.model:
            raise ValueError("scorers.sim.model is required for the wieting scorer: the "
                             "directory with sim.pt and sim.sp.30k.model (ParaDetox's SIM model "
                             "has no hub id; get it from style.cs.umass.edu and pass --set "
                             "scorers.sim.model=DIR, or set LETHE_WIETING_SIM=DIR)")

    def needs(self) -> list[Need]:
        root = Path(self.model).expanduser()
        return [Need(package="sentencepiece"),
                Need(files=(str(root / self.model_file), str(root / self.sp_file)))]
