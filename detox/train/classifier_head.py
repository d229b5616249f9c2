"""`detox train-classifier` on parallel pairs, and the embedding-head classifier.

A toxicity classifier that deletion cannot satisfy with a word list: trained on ParaDetox's
toxic sentences (class 1) against their own human neutral rewrites (class 0), so what separates
the classes is exactly what a good rewrite removes - the insult, the rudeness, not only the
swear word. `pair_folds` turns pairs into labelled folds (the valid fold is a seeded share of
the *inputs*, each with all its rewrites, so no sentence sits on both sides); `fit_head` fits
a logistic regression on the frozen sentence embedder's vectors (eval/detox/head.py), choosing
C on the valid fold.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time

import numpy as np

from detox.train.recipe import ClassifierRecipe, PairData
from lethe.errors import LetheError

log = logging.getLogger(__name__)


def pair_folds(p: PairData, labels: tuple[str, ...], seed: int) -> dict:
    """{"train"|"valid": (texts, class ids)} from parallel pairs: inputs are class 1, their
    targets class 0. Duplicate texts are kept once; the held-out slice is already out."""
    from detox.train.sft import load_pairs

    if len(labels) != 2:
        raise LetheError(f"model.labels: classifier training on pairs needs exactly two labels "
                         f"(rewrite class first, e.g. [neutral, toxic]); got {list(labels)}")
    groups: dict[str, list[str]] = {}
    for src, tgt in load_pairs(p, seed):
        groups.setdefault(src, []).append(tgt)
    inputs = sorted(groups)
    random.Random(seed).shuffle(inputs)
    n_valid = int(round(len(inputs) * p.eval_fraction)) if p.eval_fraction > 0 else 0
    chosen = {"valid": inputs[:n_valid], "train": inputs[n_valid:]}
    if p.max_train is not None:
        chosen["train"] = chosen["train"][:p.max_train]
    out = {}
    for key, srcs in chosen.items():
        pos = list(dict.fromkeys(srcs))
        neg = list(dict.fromkeys(t for s in srcs for t in groups[s] if t not in groups))
        out[key] = (pos + neg, [1] * len(pos) + [0] * len(neg))
    if not out["valid"][0]:
        out.pop("valid")
    return out


def data_hash(folds: dict) -> str:
    """SHA-256 (16 hex) of the training texts and labels, in order (for the model card)."""
    h = hashlib.sha256()
    texts, labels = folds["train"]
    for t, y in zip(texts, labels):
        h.update(f"{y}\t{t}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def embed(embedder, texts: list[str], batch_size: int, desc: str) -> np.ndarray:
    """(N, D) vectors, in chunks behind a progress bar."""
    from tqdm.auto import tqdm

    chunks = []
    for start in tqdm(range(0, len(texts), batch_size * 8), desc=desc, unit="chunk",
                      disable=None):
        chunks.append(np.asarray(embedder.encode(texts[start:start + batch_size * 8]),
                                 np.float32))
    return np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)


def fit_head(recipe: ClassifierRecipe, folds: dict) -> dict:
    """Embed every fold, fit a logistic regression per C in head.c_grid, keep the best on
    the valid fold (macro-F1; the training fold if there is none). Returns the fitted
    weight/bias, the chosen C, probabilities per fold and timings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from eval.detox.similarity import make_embedder

    embedder = make_embedder(recipe.model.name, batch_size=recipe.head.batch_size)
    start = time.perf_counter()
    X = {k: embed(embedder, texts, recipe.head.batch_size, f"embed {k}")
         for k, (texts, _) in folds.items()}
    embed_s = time.perf_counter() - start
    y = {k: np.asarray(labels) for k, (_, labels) in folds.items()}
    pick = "valid" if "valid" in folds else "train"
    best = None
    for c in recipe.head.c_grid:
        clf = LogisticRegression(C=c, max_iter=recipe.head.max_iter)
        clf.fit(X["train"], y["train"])
        f1 = f1_score(y[pick], clf.predict(X[pick]), average="macro")
        log.info("embedding head: C=%g -> %s macro-F1 %.4f", c, pick, f1)
        if best is None or f1 > best[0]:
            best = (f1, c, clf)
    _, c, clf = best
    weight, bias = _as_softmax(clf, len(recipe.model.labels))
    return {"weight": weight, "bias": bias, "C": c, "embed_seconds": round(embed_s, 1),
            "fit_seconds": round(time.perf_counter() - start - embed_s, 1),
            "probs": {k: _softmax(X[k] @ weight.T + bias) for k in folds}}


def _as_softmax(clf, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(W (C, D), b (C,)) whose softmax equals the fitted model's probabilities. A binary
    logistic regression has one logit z = w.x + b for class 1: softmax([0, z]) = sigmoid."""
    coef, intercept = np.asarray(clf.coef_, np.float32), np.asarray(clf.intercept_, np.float32)
    if coef.shape[0] == 1 and n_labels == 2:
        return (np.vstack([np.zeros_like(coef[0]), coef[0]]),
                np.array([0.0, intercept[0]], np.float32))
    return coef, intercept


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
