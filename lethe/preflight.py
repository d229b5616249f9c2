"""Preflight: check everything a long command will read before it trains or writes anything.

A run that trains for an hour and then refuses an empty QA split has wasted the hour. So every
long command (unlearn run/prepare/eval/attack, detox train/train-classifier/rewrite) first
resolves and checks its inputs and outputs through a `Preflight`: each check records either
what it verified (which `--dry-run` prints) or one problem line saying what is wrong, where,
and how to fix it. `finish()` then raises `PreflightError` carrying every problem at once; the
CLI prints one `prog: error: ...` line per problem and exits 2.

Checks read metadata only: config.json, tokenizer files, safetensors/GGUF headers, table rows
and column types. No weights are loaded and no forward pass runs; hub lookups obey
HF_HUB_OFFLINE. This module holds the generic checks; each command's list of checks lives
beside the command (unlearn/preflight.py, detox/preflight.py).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lethe.errors import LetheError

log = logging.getLogger(__name__)


class PreflightError(LetheError):
    """Every problem a preflight found; `str(err)` is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _at(where: str, message: str) -> str:
    if not where or message.startswith((f"{where}:", f"{where} ")):
        return message
    return f"{where}: {message}"


class Preflight:
    """Collects what was checked and every problem found, then reports them together."""

    def __init__(self, command: str):
        self.command = command
        self.problems: list[str] = []
        self.checked: list[str] = []
        self.cache: dict = {}  # results of checks already run (two metrics read one table)
        self._causes: set[str] = set()  # messages reported: one cause, one line
        self._start = time.perf_counter()

    def ok(self, line: str) -> None:
        if line not in self.checked:
            self.checked.append(line)

    def problem(self, line: str) -> None:
        if line not in self.problems:
            self.problems.append(line)

    def run(self, where: str, fn: Callable, *args, **kwargs):
        """`fn(*args, **kwargs)`; a `LetheError` becomes a problem (prefixed by `where`) and
        the result None, so the next check still runs."""
        # Checks reuse loaders that log ("demonstration pool: 50 demonstrations", "privleak
        # skipped"); the run logs the same when it does the work. Here it would be noise:
        # what was checked is in `checked`, what failed one line each.
        previous = logging.root.manager.disable
        logging.disable(max(previous, logging.WARNING))
        try:
            return fn(*args, **kwargs)
        except PreflightError as err:
            causes = err.problems
        except LetheError as err:
            causes = [str(err)]
        finally:
            logging.disable(previous)
        for cause in causes:
            if cause not in self._causes:  # e.g. an offline hub dataset read by four metrics
                self._causes.add(cause)
                self.problem(_at(where, cause))
        return None

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start

    def finish(self) -> "Preflight":
        """Raise `PreflightError` if anything was found; otherwise return self."""
        if self.problems:  # debug: stderr carries exactly one line per problem
            log.debug("%s preflight: %d problem(s) in %.1f s", self.command,
                      len(self.problems), self.seconds)
            raise PreflightError(self.problems)
        log.info("%s preflight: ok, %d checks in %.1f s", self.command, len(self.checked),
                 self.seconds)
        return self

    def report(self) -> str:
        """What `--dry-run` prints: YAML, so it can follow a printed recipe in one document."""
        import yaml

        return yaml.safe_dump({"preflight": "ok", "command": self.command,
                               "seconds": round(self.seconds, 2), "checked": self.checked},
                              sort_keys=False, allow_unicode=True, width=100_000)


# ---------------------------------------------------------------------------------------------
# tables


def check_table(pf: Preflight, source: str, *, config: str | None = None,
                split: str | None = None, text: tuple[str, ...] = (),
                columns: tuple[str, ...] = (), revision: str | None = None,
                where: str = "data", memory: dict | None = None, hint: str = "") -> int | None:
    """One split has rows, the fields `text` (holding strings) and `columns` (any type).

    `memory` is data the command will generate itself ({config: {split: [row, ...]}}),
    checked before it is written; `hint` names the setting to change when a split is empty.
    Returns the row count (None on a problem).
    """
    key = ("table", str(source), config, split, tuple(text), tuple(columns), revision)
    if key not in pf.cache:
        fix = f"; {hint}" if hint else ""
        if memory is not None:
            n = pf.run(where, _memory_rows, memory, str(source), config, split, text, columns,
                       fix)
        else:
            n = pf.run(where, _disk_rows, str(source), config, split, text, columns, revision,
                       fix)
        pf.cache[key] = n
        if n is not None:
            name = "/".join(x for x in (config, split) if x) or "table"
            pf.ok(f"{where}: {source} {name}: {n} rows, field(s) "
                  f"{', '.join((*text, *columns))}")
    return pf.cache[key]


def _label(source: str, config: str | None, split: str | None) -> str:
    return f"dataset {source}" + (f" (config {config})" if config else "") + \
        (f" split {split}" if split else "")


def _disk_rows(source, config, split, text, columns, revision, fix) -> int:
    from lethe.loading import load_table

    label = _label(source, config, split)
    try:
        ds = load_table(source, config=config, split=split, columns=(*text, *columns),
                        revision=revision, allow_empty=True)
    except LetheError as err:
        if str(err).endswith("is empty"):  # an empty file, caught before `datasets` reads it
            raise LetheError(f"{label} is empty{fix}") from None
        raise
    if len(ds) == 0:
        raise LetheError(f"{label} is empty{fix}")
    for col in text:
        feature = ds.features[col]
        if getattr(feature, "dtype", None) not in ("string", "large_string"):
            kind = getattr(feature, "dtype", None) or type(feature).__name__
            raise LetheError(f"{label}: field {col} holds {kind} values, expected text; fix the "
                             f"data or point the recipe at a text field")
    return len(ds)


def _memory_rows(memory, source, config, split, text, columns, fix) -> int:
    label = _label(source, config, split) + " (generated)"
    splits = memory.get(config) if config else memory
    if splits is None:
        raise LetheError(f"generated dataset {source} has no config '{config}' (configs: "
                         f"{', '.join(sorted(memory))})")
    if split not in splits:
        raise LetheError(f"{label}: no such split (splits: {', '.join(sorted(splits))})")
    rows = splits[split]
    if not rows:
        raise LetheError(f"{label} is empty{fix}")
    missing = [c for c in (*text, *columns) if c not in rows[0]]
    if missing:
        raise LetheError(f"{label} lacks field(s) {', '.join(missing)} (it has: "
                         f"{', '.join(rows[0])})")
    for col in text:
        bad = next((i for i, r in enumerate(rows) if not isinstance(r.get(col), str)), None)
        if bad is not None:
            raise LetheError(f"{label}: field {col} of row {bad} is not text")
    return len(rows)


# ---------------------------------------------------------------------------------------------
# models


@dataclass(frozen=True)
class ModelInfo:
    """What a preflight learned about a model without loading its weights."""

    spec: str
    kind: str  # dir | gguf | adapter | hub (lethe.loading.ModelSource.kind)
    path: str
    config: Any = None  # transformers config (None: a GGUF file not converted yet)
    n_params: int | None = None  # parameters of the full model (base + adapter)
    dtype_bytes: int | None = None  # bytes per stored parameter
    tokenizer: Any = None  # the tokenizer (small), to compare vocabularies
    task: str = "causal-lm"


DTYPE_BYTES = {"float32": 4, "fp32": 4, "float": 4, "bfloat16": 2, "bf16": 2, "float16": 2,
               "fp16": 2, "half": 2, "float64": 8}
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                     "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
AUTO_CLASSES = {"causal-lm": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM",
                "sequence-classification": "AutoModelForSequenceClassification",
                "encoder": "AutoModel"}


def check_model(pf: Preflight, spec: str, *, where: str, task: str = "causal-lm",
                revision: str | None = None, trust_remote_code: bool = False,
                tokenizer: bool = True) -> ModelInfo | None:
    """`spec` resolves, its config loads, its parameters are counted (from the safetensors
    header, else from the config on the meta device), and with `tokenizer` its tokenizer loads
    and fits the embedding. `task`: causal-lm | seq2seq | sequence-classification | encoder |
    auto (seq2seq for encoder-decoder configs, else causal-lm)."""
    key = ("model", str(spec), task, revision, tokenizer)
    if key not in pf.cache:
        pf.cache[key] = _check_model(pf, str(spec), where, task, revision, trust_remote_code,
                                     tokenizer)
    return pf.cache[key]


def _check_model(pf, spec, where, task, revision, trust, want_tok) -> ModelInfo | None:
    from lethe.loading import resolve_model

    src = pf.run(where, resolve_model, spec)
    if src is None:
        return None
    if src.kind == "adapter":
        return _check_adapter_model(pf, src, where, task, revision, trust, want_tok)
    path = src.path
    if src.kind == "gguf":
        path = _gguf_converted(src.path)
        if path is None:  # converting means loading every weight: leave it to the run
            n = _gguf_parameters(src.path)
            pf.ok(f"{where}: {spec}: GGUF file {src.path}{_params(n)}; config and tokenizer "
                  f"are read when it is first converted")
            return ModelInfo(spec, "gguf", src.path, n_params=n, dtype_bytes=4, task=task)
    name = spec if src.kind == "hub" else path
    config = pf.run(where, load_config, name, src.kind, revision, trust)
    if config is None:
        return None
    task = resolve_task(task, config)
    counted = pf.run(where, parameter_count, path if src.kind != "hub" else None, config, task,
                     trust)
    n, nbytes = counted or (None, None)
    tok = None
    if want_tok:
        tok = pf.run(where, fitting_tokenizer, name, config, revision, trust)
        if tok is None:
            return None
    info = ModelInfo(spec, src.kind, path, config, n, nbytes, tok, task)
    pf.ok(f"{where}: {spec}: {describe(info)}")
    return info


def _check_adapter_model(pf, src, where, task, revision, trust, want_tok) -> ModelInfo | None:
    if not src.base:
        pf.problem(f"{where}: adapter {src.path} names no base model "
                   f"(base_model_name_or_path in adapter_config.json); set it to the model the "
                   f"adapter was trained on")
        return None
    base = check_model(pf, src.base, where=f"{where} (base of adapter {src.path})", task=task,
                       revision=revision, trust_remote_code=trust, tokenizer=False)
    if base is None:
        return None
    fits = check_adapter(pf, src.path, base, where=where)
    if fits is None:
        return None
    from lethe.loading import TOKENIZER_FILES

    own = any((Path(src.path) / f).is_file() for f in TOKENIZER_FILES)
    tok = None
    if want_tok and (own or base.config is not None):
        tok = pf.run(where, fitting_tokenizer, src.path if own else base.path, base.config,
                     revision, trust)
        if tok is None:
            return None
    info = ModelInfo(str(src.path), "adapter", src.path, base.config, base.n_params,
                     base.dtype_bytes, tok, base.task)
    fit = (f"{fits} adapted matrices fit the base" if fits else
           "shapes not compared: no safetensors adapter or base config yet")
    pf.ok(f"{where}: {src.path}: LoRA adapter on {base.spec} ({fit})"
          f"{'; tokenizer ' + str(len(tok)) + ' tokens' if tok is not None else ''}")
    return info


def resolve_task(task: str, config) -> str:
    if task != "auto":
        return task
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal-lm"


def describe(info: ModelInfo) -> str:
    arch = ", ".join(getattr(info.config, "architectures", None) or []) or \
        getattr(info.config, "model_type", "?")
    tok = f", tokenizer {len(info.tokenizer)} tokens" if info.tokenizer is not None else ""
    vocab = vocab_size(info.config)
    return f"{info.kind} {arch}{_params(info.n_params)}{tok}" + \
        (f" (vocab {vocab})" if vocab and tok else "")


def _params(n: int | None) -> str:
    return f", {n / 1e6:.2f}M parameters" if n else ""


def load_config(name: str, kind: str, revision: str | None = None,
                trust_remote_code: bool = False):
    """A model's transformers config (reads config.json only); one-line errors."""
    from transformers import AutoConfig

    from lethe.loading import hub_error

    try:
        return AutoConfig.from_pretrained(name, revision=revision,
                                          trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        if kind == "hub":
            raise hub_error("model", name, err) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LetheError(f"config.json in {name} does not load ({first}); save the model with "
                         f"save_pretrained") from None


def vocab_size(config) -> int | None:
    if config is None:
        return None
    size = getattr(config, "vocab_size", None)
    if size is None and hasattr(config, "get_text_config"):
        size = getattr(config.get_text_config(), "vocab_size", None)
    return size


def fitting_tokenizer(name: str, config, revision=None, trust_remote_code=False):
    """The model's tokenizer, refusing one with more tokens than the embedding has rows (the
    first such id would index past the embedding in the first forward pass)."""
    from lethe.loading import load_tokenizer

    tok = load_tokenizer(name, revision=revision, trust_remote_code=trust_remote_code)
    vocab = vocab_size(config)
    if vocab and len(tok) > vocab:
        raise LetheError(f"the tokenizer of {name} has {len(tok)} tokens but the model's "
                         f"embedding has {vocab} rows; save the model's own tokenizer beside it")
    return tok


def skeleton(config, task: str = "causal-lm", trust_remote_code: bool = False):
    """The model `config` describes, built on the meta device (module names and shapes, no
    memory, no weights); None when this task's auto class cannot build it."""
    import torch
    import transformers

    auto = getattr(transformers, AUTO_CLASSES[task])
    try:
        with torch.device("meta"):
            return auto.from_config(config, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError, TypeError, ImportError, RuntimeError, AttributeError) as err:
        log.debug("no %s skeleton for %s: %s", task, type(config).__name__, err)
        return None


def safetensors_header(path: Path) -> dict:
    """{tensor name: {"dtype", "shape", ...}} from a .safetensors file's JSON header."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        raise LetheError(f"{path} is not a readable safetensors file; save the model again") \
            from None
    header.pop("__metadata__", None)
    return header


def checkpoint_tensors(path: str | Path) -> dict:
    """Every tensor header of the *.safetensors files in directory `path` ({} if none)."""
    out = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        out.update(safetensors_header(f))
    return out


def parameter_count(path: str | None, config, task: str = "causal-lm",
                    trust_remote_code: bool = False) -> tuple[int | None, int]:
    """(parameters, bytes per parameter): from the checkpoint's safetensors headers when
    there are some, else from the config (meta-device model; the config's dtype)."""
    tensors = checkpoint_tensors(path) if path else {}
    if tensors:
        n = sum(math.prod(t["shape"]) for t in tensors.values())
        by_dtype: dict[str, int] = {}
        for t in tensors.values():
            by_dtype[t["dtype"]] = by_dtype.get(t["dtype"], 0) + math.prod(t["shape"])
        main = max(by_dtype, key=by_dtype.get)
        return n, SAFETENSORS_BYTES.get(main, 4)
    model = skeleton(config, task, trust_remote_code)
    n = sum(p.numel() for p in model.parameters()) if model is not None else None
    stored = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "")
    return n, DTYPE_BYTES.get(stored.replace("torch.", ""), 4)


def _gguf_converted(path: str) -> str | None:
    from lethe.loading import gguf_cache_path

    out = gguf_cache_path(path)
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return str(out)
    return None


def _gguf_parameters(path: str) -> int | None:
    """Parameter count from the GGUF header (tensor infos; the data is memory-mapped, not
    read)."""
    try:
        from gguf import GGUFReader

        return int(sum(int(t.n_elements) for t in GGUFReader(path).tensors))
    except Exception as err:  # noqa: BLE001 - gguf raises many types; the count is optional
        log.debug("could not count the parameters of %s: %s", path, err)
        return None


# ---------------------------------------------------------------------------------------------
# adapters


def check_adapter(pf: Preflight, adapter: str, base: ModelInfo, *, where: str) -> int | None:
    """Every LoRA matrix of `adapter` fits a module of `base` (an adapter trained on another
    base has other module names or shapes). Returns the matrices compared, None on a
    problem."""
    return pf.run(where, adapter_fits, adapter, base)


def adapter_fits(adapter: str, base: ModelInfo) -> int:
    tensors = checkpoint_tensors(adapter)
    if not tensors or base.config is None:
        return 0  # a .bin adapter, or a GGUF base not converted yet: nothing to compare
    model = skeleton(base.config, base.task)
    if model is None:
        return 0
    modules = dict(model.named_modules())
    fix = (f"(trained on another base?); use the base it was trained on or an adapter "
           f"trained on {base.spec}")
    checked = 0
    for name, t in sorted(tensors.items()):
        side = "A" if ".lora_A." in name else "B" if ".lora_B." in name else None
        if side is None:
            continue
        module_name = name.split(".lora_")[0].removeprefix("base_model.model.")
        module = modules.get(module_name)
        if module is None:
            raise LetheError(f"adapter {adapter} does not fit {base.spec}: it adapts "
                             f"{module_name}, which {base.spec} does not have {fix}")
        dims = _linear_dims(module)
        if dims is None:
            continue
        shape = t["shape"]
        if (side == "A" and shape[-1] != dims[0]) or (side == "B" and shape[0] != dims[1]):
            raise LetheError(f"adapter {adapter} does not fit {base.spec}: {name} has shape "
                             f"{list(shape)} but {module_name} maps {dims[0]} -> {dims[1]} "
                             f"features {fix}")
        checked += 1
    return checked


def _linear_dims(module) -> tuple[int, int] | None:
    """(in, out) features of a linear layer (nn.Linear, or GPT-2's transposed Conv1D)."""
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:
        return weight.shape[0], weight.shape[1]
    return None


def lora_trainable(model_skeleton, lora) -> int | None:
    """Parameters LoRA adds (and trains): r·(in + out) per adapted linear layer."""
    if model_skeleton is None or lora is None or not lora.enabled:
        return None
    total = 0
    for name, module in model_skeleton.named_modules():
        dims = _linear_dims(module)
        if dims and name.rsplit(".", 1)[-1] in lora.target_modules:
            total += lora.r * (dims[0] + dims[1])
    return total


# ---------------------------------------------------------------------------------------------
# outputs, disk, trainer settings


def check_output_dir(pf: Preflight, path, *, overwrite: bool = False, resume: bool = False,
                     where: str = "output_dir") -> bool:
    """`path` can be created or written, and holds no earlier results unless `overwrite` or
    `resume` (the same rule `lethe.outputs.prepare_output_dir` enforces later)."""
    from lethe.outputs import output_dir_problem

    problem = output_dir_problem(path, overwrite=overwrite, resume=resume, what=where)
    if problem:
        pf.problem(problem)
        return False
    p = Path(path)
    state = ("new" if not p.exists() else "empty" if not any(p.iterdir())
             else "continued (--resume)" if resume else "results replaced (--overwrite)")
    pf.ok(f"{where} {path}: writable, {state}")
    return True


def check_output_file(pf: Preflight, path, *, where: str) -> bool:
    """An output file: not a directory, and its directory can be created or written."""
    from lethe.outputs import writable_problem

    p = Path(path)
    problem = (f"{where} {p} is a directory; give a file path" if p.is_dir()
               else writable_problem(p.parent, f"the directory of {where}"))
    if problem:
        pf.problem(problem)
        return False
    pf.ok(f"{where} {p}: writable")
    return True


def check_device(pf: Preflight, name: str, where: str = "--device") -> None:
    """`name` is `auto` or a device torch can parse (cpu, cuda, cuda:1, mps)."""
    if name == "auto":
        return
    import torch

    try:
        torch.device(name)
    except RuntimeError:
        pf.problem(f"{where} '{name}' is not a torch device (use auto, cpu, cuda, cuda:1, mps)")


# TrainingArguments refuses bf16/fp16/tf32 on a machine without an accelerator, and a DeepSpeed
# config starts distributed set-up; a preflight checks them without instantiating them.
GPU_ONLY_KEYS = ("bf16", "fp16", "tf32")


def held_keys(train: dict) -> tuple[dict, dict]:
    """(train without the keys a preflight must not instantiate here, those keys)."""
    import torch

    hold = ("deepspeed",) + (() if torch.cuda.is_available() else GPU_ONLY_KEYS)
    rest = {k: v for k, v in train.items() if k not in hold}
    return rest, {k: v for k, v in train.items() if k in hold}


def check_training_args(pf: Preflight, train: dict, output_dir, *, where: str = "train",
                        build: Callable | None = None):
    """Build the trainer's config from a recipe's `train:` section (TrainingArguments unless
    `build(train, output_dir)` says otherwise) without starting anything; the held-out keys
    are checked by type, a DeepSpeed file by `deepspeed_config`. Returns the config."""
    rest, held = held_keys(train)
    if held.get("deepspeed"):
        from lethe.deepspeed import deepspeed_config

        stage = pf.run(f"{where}.deepspeed", deepspeed_config, held["deepspeed"])
        if stage is not None:
            pf.ok(f"{where}.deepspeed {held['deepspeed']}: JSON, ZeRO stage {stage}")
    for key in GPU_ONLY_KEYS:
        if key in held and held[key] is not None and not isinstance(held[key], bool):
            pf.problem(f"{where}.{key}: expected true or false, got {held[key]!r}")

    def default(t, out):
        from lethe.trainer import training_arguments

        return training_arguments(t, out)

    def built():
        import warnings

        try:
            with warnings.catch_warnings():  # the run itself warns about these, once
                warnings.filterwarnings("ignore", message=".*deprecated", category=FutureWarning)
                return (build or default)(rest, output_dir)
        except LetheError as err:
            text = str(err)
            raise LetheError(text[len("train: "):] if text.startswith("train: ") else text) \
                from None

    cfg = pf.run(where, built)
    if cfg is not None:
        pf.ok(f"{where}: a valid {type(cfg).__name__}" +
              (f" (not instantiated here: {', '.join(sorted(held))})" if held else ""))
    return cfg


def checkpoints_kept(train: dict) -> tuple[int, bool]:
    """(trainer checkpoints on disk at the end, whether that count is exact). Lethe's default
    is save_strategy: no; otherwise min(save_total_limit, number of saves) when known."""
    strategy = str(train.get("save_strategy", "no")).lower().rsplit(".", 1)[-1]
    if strategy == "no":
        return 0, True
    saves = None
    if strategy == "epoch":
        saves = math.ceil(float(train.get("num_train_epochs", 3.0)))
    elif int(train.get("max_steps", -1) or -1) > 0:
        every = float(train.get("save_steps", 500) or 500)
        max_steps = int(train["max_steps"])
        every = max_steps * every if every < 1 else every  # a ratio of the total
        saves = max(1, int(max_steps // max(every, 1)))
    limit = train.get("save_total_limit")
    known = [c for c in (saves, limit) if c]
    return (min(known), True) if known else (1, False)


def training_bytes(train: dict, *, n_params: int, dtype_bytes: int,
                   trainable: int | None = None) -> tuple[int, str]:
    """Bytes the trainer's `checkpoint-*` directories take, and how they were counted.

    A checkpoint holds the trained weights (the adapter alone under LoRA) plus, unless
    save_only_model, AdamW's two moments (2 x the parameter bytes; 12 bytes per parameter
    under DeepSpeed: fp32 master weights and two fp32 moments)."""
    kept, exact = checkpoints_kept(train)
    if kept == 0:
        return 0, "no trainer checkpoints (save_strategy: no)"
    trained = trainable if trainable is not None else n_params
    weights = trained * dtype_bytes
    optimizer = 0 if train.get("save_only_model") else \
        trained * (12 if train.get("deepspeed") else 2 * max(dtype_bytes, 2))
    per = weights + optimizer
    return kept * per, f"{'' if exact else 'at least '}{kept} checkpoint(s) x {_size(per)}"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_disk(pf: Preflight, path, need: int, detail: str, *, where: str = "disk") -> None:
    """`need` bytes (estimated: `detail` says how) fit in the free space where `path` goes."""
    from lethe.outputs import nearest_existing

    free = shutil.disk_usage(nearest_existing(path)).free
    if need > free:
        pf.problem(f"{where}: {path} needs about {_size(need)} ({detail}) but only {_size(free)} "
                   f"are free there; free some space, lower train.save_total_limit, or choose "
                   f"another output directory")
        return
    pf.ok(f"{where}: about {_size(need)} to write under {path} ({detail}); {_size(free)} free")


def model_bytes(info: ModelInfo | None, dtype: str | None = "auto") -> tuple[int, int] | None:
    """(parameters, bytes per parameter as it will be saved) of a checked model; None if
    unknown. `dtype` is the recipe's load dtype ("auto" keeps the stored one)."""
    if info is None or not info.n_params:
        return None
    stored = info.dtype_bytes or 4
    return info.n_params, DTYPE_BYTES.get(str(dtype), stored) if dtype not in (None, "auto") \
        else stored
