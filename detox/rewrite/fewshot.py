"""The `fewshot` rewriter: in-context paraphrasing with a demonstration pool, retrieval, ordering.

Follows Som et al. (2024), "Demonstrations Are All You Need: Advancing Offensive Content
Paraphrasing using In-Context Learning": k (rude, polite) demonstrations are chosen from a
parallel pool -- at random, or the most/least similar to the input by cosine of sentence
embeddings -- shown in ascending or descending order of similarity, with or without an
instruction, optionally with the earlier dialogue turns of CAPP-style inputs.

Pool files (jsonl / json / csv / tsv), recognised by their columns:
- ParaDetox: `toxic, neutral1[, neutral2, neutral3]` (the first non-empty neutral is the target),
  or the hub dataset's `en_toxic_comment, en_neutral_comment` (`pool: s-nlp/paradetox`);
- CAPP: `Context, Utterance, Paraphrase` (Context turns joined by " [SEP] ");
- generic: `source, target[, context]`.

The pool's embeddings are computed once and cached on disk, keyed by a hash of the pool's
content and the embedder's identity, so a changed pool or model never reuses a stale index.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from detox.heldout import drop_heldout
from detox.rewrite.recipe import LMFields, PromptConfig, rewriter
from detox.rewrite.rewriters import prompt_rewriter
from lethe.errors import LetheError
from lethe.loading import looks_like_path

log = logging.getLogger(__name__)

BUILTIN_POOL = "builtin"


@dataclass(frozen=True)
class Demo:
    source: str  # the rude / toxic text
    target: str  # its polite / neutral rewrite
    context: tuple[str, ...] = ()  # earlier dialogue turns, oldest first


def builtin_pool_path() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "demos.jsonl"


# ---------------------------------------------------------------------------------------------
# reading pools


def read_rows(path: Path) -> list[dict]:
    """Rows of a jsonl/json/csv/tsv file as dicts.

    csv/tsv are read with Python's csv module rather than pandas: pandas turns cells such as
    "null" or "NA" into missing values, which would silently drop real sentences.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            with path.open(encoding="utf-8") as fh:
                for number, line in enumerate(fh, start=1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as err:
                            raise LetheError(f"{path}: line {number}: invalid JSON ({err.msg})") \
                                from None
            return rows
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return data if isinstance(data, list) else [data]
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as fh:
                return list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    except UnicodeDecodeError:
        raise LetheError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    raise LetheError(f"{path}: unknown table format '{path.suffix}'; use .jsonl, .json, .csv "
                     f"or .tsv")


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _context(value, sep: str | None = None) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(_text(v) for v in value if _text(v))
    text = _text(value)
    if not text:
        return ()
    return tuple(t.strip() for t in text.split(sep) if t.strip()) if sep else (text,)


# layout name -> (columns that identify it, row -> Demo)
LAYOUTS: dict[str, tuple[tuple[str, ...], Callable[[dict], Demo]]] = {
    "paradetox": (("toxic", "neutral1"), lambda r: Demo(
        _text(r["toxic"]),
        next((_text(r.get(c)) for c in ("neutral1", "neutral2", "neutral3") if _text(r.get(c))),
             ""))),
    "paradetox_hub": (("en_toxic_comment", "en_neutral_comment"), lambda r: Demo(
        _text(r["en_toxic_comment"]), _text(r["en_neutral_comment"]))),
    "capp": (("Utterance", "Paraphrase"), lambda r: Demo(
        _text(r["Utterance"]), _text(r["Paraphrase"]), _context(r.get("Context"), " [SEP] "))),
    "source_target": (("source", "target"), lambda r: Demo(
        _text(r["source"]), _text(r["target"]), _context(r.get("context")))),
}


def detect_layout(columns: Sequence[str], where: str) -> str:
    for name, (needed, _) in LAYOUTS.items():
        if all(c in columns for c in needed):
            return name
    raise LetheError(f"{where}: unknown demonstration layout (columns: {', '.join(columns)}); "
                     f"use toxic+neutral1 (ParaDetox), Utterance+Paraphrase (CAPP) or "
                     f"source+target")


def load_pool(spec: str) -> list[Demo]:
    """Demonstrations from a file (`builtin` = the bundled pool); rows missing a side are
    skipped."""
    path = builtin_pool_path() if spec == BUILTIN_POOL else Path(spec).expanduser()
    if path.is_file():
        rows = read_rows(path)
    elif spec != BUILTIN_POOL and not looks_like_path(spec) and "/" in spec:
        from lethe.loading import load_table  # a hub dataset (split train), e.g. s-nlp/paradetox

        rows = [dict(r) for r in load_table(spec, split="train")]
    else:
        raise LetheError(f"demonstration pool not found: {spec} (a .jsonl/.csv/.tsv file, a "
                         f"hub dataset id, or `builtin`)")
    if not rows:
        raise LetheError(f"demonstration pool {path} is empty")
    if not all(isinstance(r, dict) for r in rows):
        raise LetheError(f"demonstration pool {path}: every row must be an object")
    layout = detect_layout(list(rows[0].keys()), str(path))
    make = LAYOUTS[layout][1]
    demos = [d for d in map(make, rows) if d.source and d.target]
    # the ParaDetox held-out slice is never a demonstration (detox/heldout.py)
    demos = drop_heldout(demos, lambda d: d.source, f"demonstration pool {path.name}")
    if not demos:
        raise LetheError(f"demonstration pool {path} has no row with both a source and a target")
    log.info("demonstration pool %s: %d demonstrations (%s layout)", path.name, len(demos), layout)
    return demos


def pool_hash(demos: Sequence[Demo]) -> str:
    """Content hash of a pool (independent of the file format it came from)."""
    h = hashlib.sha256()
    for d in demos:
        h.update(json.dumps([d.source, d.target, list(d.context)], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# retrieval


class DemoIndex:
    """Embeddings of the pool's sources, computed once, cached as .npy under `cache_dir`."""

    def __init__(self, demos: Sequence[Demo], embedder, cache_dir: str | Path | None = None):
        self.demos = list(demos)
        self.embedder = embedder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._emb: np.ndarray | None = None

    @property
    def key(self) -> str:
        h = hashlib.sha256(f"{pool_hash(self.demos)}|{self.embedder.identity}".encode())
        return h.hexdigest()[:32]

    @property
    def cache_file(self) -> Path | None:
        return self.cache_dir / f"{self.key}.npy" if self.cache_dir is not None else None

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) L2-normalised embeddings of the demonstration sources."""
        if self._emb is None:
            path = self.cache_file
            if path is not None and path.is_file():
                emb = np.load(path)
                if emb.shape[0] == len(self.demos):
                    self._emb = emb
                    return emb
            log.info("embedding %d demonstrations (once; cached in %s)", len(self.demos),
                     path or "memory")
            emb = np.asarray(self.embedder.encode([d.source for d in self.demos]), np.float32)
            if path is not None:
                _save_npy(path, emb)
            self._emb = emb
        return self._emb

    def similarities(self, queries: Sequence[str]) -> np.ndarray:
        """(Q, N) cosine similarity of each query to each demonstration source."""
        q = np.asarray(self.embedder.encode(list(queries)), np.float32)  # (Q, D)
        return q @ self.embeddings.T


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# selection name -> fn(similarities (N,) or None, candidate indices, k, rng) -> chosen indices
SELECTIONS: dict[str, Callable] = {}
# order name -> fn(chosen indices, similarities (N,) or None) -> indices in prompt order
ORDERS: dict[str, Callable] = {}


def selection(name: str, needs_similarity: bool):
    def deco(fn):
        fn.needs_similarity = needs_similarity
        SELECTIONS[name] = fn
        return fn

    return deco


def order(name: str, needs_similarity: bool):
    def deco(fn):
        fn.needs_similarity = needs_similarity
        ORDERS[name] = fn
        return fn

    return deco


@selection("random", needs_similarity=False)
def _select_random(sims, candidates: np.ndarray, k: int, rng) -> np.ndarray:
    return rng.choice(candidates, size=min(k, len(candidates)), replace=False)


@selection("most_similar", needs_similarity=True)
def _select_most(sims, candidates: np.ndarray, k: int, rng) -> np.ndarray:
    ranked = candidates[np.argsort(-sims[candidates], kind="stable")]  # most similar first
    return ranked[:k]


@selection("least_similar", needs_similarity=True)
def _select_least(sims, candidates: np.ndarray, k: int, rng) -> np.ndarray:
    ranked = candidates[np.argsort(sims[candidates], kind="stable")]  # least similar first
    return ranked[:k]


@order("ascending", needs_similarity=True)
def _ascending(chosen: np.ndarray, sims) -> np.ndarray:
    """Least similar first, so the most similar demonstration sits next to the input."""
    return chosen[np.argsort(sims[chosen], kind="stable")]


@order("descending", needs_similarity=True)
def _descending(chosen: np.ndarray, sims) -> np.ndarray:
    return chosen[np.argsort(-sims[chosen], kind="stable")]


@order("as_selected", needs_similarity=False)
def _as_selected(chosen: np.ndarray, sims) -> np.ndarray:
    return chosen


def text_seed(seed: int, text: str) -> list[int]:
    """A seed from (seed, text): the same input draws the same demonstrations in any batch."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return [seed, int.from_bytes(digest, "little")]


class DemoSelector:
    """Chooses and orders k demonstrations per input."""

    def __init__(self, demos: Sequence[Demo], k: int, selection: str = "most_similar",
                 order: str = "ascending", embedder=None, cache_dir: str | Path | None = None,
                 seed: int = 0, exclude_identical: bool = True):
        if selection not in SELECTIONS:
            raise LetheError(f"unknown demonstration selection '{selection}'; valid: "
                             f"{', '.join(sorted(SELECTIONS))}")
        if order not in ORDERS:
            raise LetheError(f"unknown demonstration order '{order}'; valid: "
                             f"{', '.join(sorted(ORDERS))}")
        self.demos = list(demos)
        self.k = k
        self.select_fn = SELECTIONS[selection]
        self.order_fn = ORDERS[order]
        self.needs_similarity = k > 0 and (self.select_fn.needs_similarity
                                           or self.order_fn.needs_similarity)
        if self.needs_similarity and embedder is None:
            raise LetheError(f"selection '{selection}' with order '{order}' needs an embedder")
        self.index = DemoIndex(self.demos, embedder, cache_dir) if embedder is not None else None
        self.seed = seed
        self.exclude_identical = exclude_identical
        self._by_source: dict[str, list[int]] = {}
        for i, d in enumerate(self.demos):
            self._by_source.setdefault(d.source.strip(), []).append(i)

    def select_indices(self, queries: Sequence[str]) -> list[np.ndarray]:
        if self.k == 0:
            return [np.zeros(0, dtype=int) for _ in queries]
        sims = self.index.similarities(queries) if self.needs_similarity else None  # (Q, N)
        everything = np.arange(len(self.demos))
        out = []
        for qi, query in enumerate(queries):
            candidates = everything
            if self.exclude_identical and query.strip() in self._by_source:
                candidates = np.setdiff1d(everything, self._by_source[query.strip()])
            row = sims[qi] if sims is not None else None
            rng = np.random.default_rng(text_seed(self.seed, query))
            chosen = np.asarray(self.select_fn(row, candidates, self.k, rng), dtype=int)
            out.append(self.order_fn(chosen, row))
        return out

    def select(self, queries: Sequence[str]) -> list[list[Demo]]:
        return [[self.demos[i] for i in idx] for idx in self.select_indices(queries)]


# ---------------------------------------------------------------------------------------------
# the rewriter


@rewriter("fewshot")
@dataclass(frozen=True)
class FewShotConfig(LMFields):
    """In-context paraphrasing with retrieved demonstrations (Som et al., 2024)."""

    name: str = "fewshot"
    pool: str = "builtin"  # demonstrations: jsonl/csv/tsv (ParaDetox, CAPP or source/target
    #                        columns); `builtin` = detox/data/demos.jsonl
    k: int = 4  # demonstrations per prompt (0 = zero-shot)
    selection: Literal["random", "most_similar", "least_similar"] = "most_similar"
    # order of the chosen demonstrations by similarity to the input: ascending puts the most
    # similar last, next to the input; as_selected keeps selection order (random stays random)
    order: Literal["ascending", "descending", "as_selected"] = "ascending"
    embedder: str = "minilm"  # sentence embedder for retrieval: minilm, a dir/hub id, hashing
    exclude_identical: bool = True  # never show the input itself as a demonstration
    seed: int = 0  # random selection: same input + seed -> same demonstrations, any batching
    index_cache: str | None = None  # where pool embeddings are cached (default LETHE_CACHE)
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self):
        if self.k < 0:
            raise ValueError(f"rewriter.k must be >= 0, got {self.k}")

    def build(self, recipe, scorers=None):
        if self.k > 0 and self.prompt.format == "raw":
            raise LetheError("rewriter.prompt.format=raw cannot show demonstrations; use chat "
                             "or plain, or set rewriter.k=0")
        return prompt_rewriter(self, recipe, make_selector)

    def check(self, pf, recipe, where: str) -> None:
        """Preflight: the model, then the pool and the retrieval embedder it will load."""
        from detox.rewrite.checks import check_language_model

        check_language_model(pf, self, where)
        if self.k == 0:
            return
        if self.prompt.format == "raw":
            pf.problem(f"{where}.prompt.format=raw cannot show demonstrations; use chat or "
                       f"plain, or set {where}.k=0")
        demos = pf.run(f"{where}.pool", load_pool, self.pool)
        if demos is not None:
            pf.ok(f"{where}.pool {self.pool}: {len(demos)} demonstrations")
        if self.embedder.startswith("hashing"):
            from eval.detox.similarity import make_embedder

            pf.run(f"{where}.embedder", make_embedder, self.embedder)
        else:
            from lethe.preflight import check_model

            check_model(pf, self.embedder, where=f"{where}.embedder", task="encoder")


def make_selector(cfg: FewShotConfig) -> DemoSelector | None:
    if cfg.k == 0:
        return None
    from eval.detox.similarity import make_embedder
    from lethe.loading import cache_dir

    demos = load_pool(cfg.pool)
    embedder = make_embedder(cfg.embedder, device=cfg.device)
    index_dir = Path(cfg.index_cache) if cfg.index_cache else cache_dir() / "detox-index"
    return DemoSelector(demos, cfg.k, cfg.selection, cfg.order, embedder, index_dir, cfg.seed,
                        cfg.exclude_identical)


