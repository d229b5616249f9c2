"""`unlearn run`: recipe → unlearned checkpoint(s) → six-way report.

One *request* = one forget set unlearned through the shared trainer with the recipe's method.
A recipe may list several (MUSE C6 sustainability: applied in sequence, each on top of the last;
C5 scalability: independent runs from the target over growing forget sets). Every request
starts by loading its starting model from disk (the target, or the previous request's
checkpoint), which keeps the flow identical under DeepSpeed ZeRO-3, where an engine cannot be
re-wrapped, and makes a killed run resumable: `ledger.json` records finished requests.

Evaluation loads the saved checkpoints from disk on rank 0 only (other ranks return after
saving), so it measures exactly what was written and never hangs a multi-GPU job.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lethe.report import atomic_write_text, write_json
from lethe.cli import is_main_process
from lethe.errors import LetheError
from lethe.loading import load_model, load_table, load_tokenizer, model_identity
from lethe.locks import output_lock
from lethe.outputs import replace_dir
from lethe.recipe import dump_yaml, to_dict
from lethe.trainer import (DivergenceGuard, LetheTrainer, apply_lora, resume_checkpoint,
                           training_arguments)
from unlearn.data import PairedCollator, PairedDataset, tokenize_texts
from unlearn.methods import Method, get_method
from unlearn.recipe import SplitRef, UnlearnRecipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    index: int  # 1-based
    label: str  # e.g. "forget" or "sust/forget_2"
    forget: SplitRef
    out_dir: Path  # request_k/ (or the run directory itself for a single request)


def plan_requests(recipe: UnlearnRecipe) -> list[Request]:
    refs = recipe.requests.forget or (recipe.data.forget,)
    root = Path(recipe.output_dir)
    out = []
    for i, ref in enumerate(refs, 1):
        label = ref.split if ref.config == "raw" else f"{ref.config}/{ref.split}"
        out.append(Request(i, label, ref, root if len(refs) == 1 else root / f"request_{i}"))
    return out


def read_texts(source: str, ref: SplitRef, revision: str | None = None) -> list[str]:
    table = load_table(source, config=ref.config, split=ref.split, columns=(ref.field,),
                       revision=revision)
    return [t for t in table[ref.field] if isinstance(t, str) and t.strip()]


def read_rows(source: str, ref: SplitRef, extra: tuple[str, ...] = (),
              revision: str | None = None) -> list[dict]:
    """The rows of `ref` with its fields (and `extra` columns) whose text fields are non-empty."""
    columns = tuple(dict.fromkeys(ref.fields + extra))
    table = load_table(source, config=ref.config, split=ref.split, columns=columns,
                       revision=revision)
    rows = [{c: table[c][i] for c in columns} for i in range(len(table))]
    return [r for r in rows if all(isinstance(r[f], str) and r[f].strip() for f in ref.fields)]


def split_examples(tokenizer, source: str, ref: SplitRef | None, data) -> list[dict]:
    """Training examples of one split: text chunks, or prompt + answer pairs (`prompt_field`)."""
    from unlearn.data import qa_examples

    if ref is None:
        return []
    rows = read_rows(source, ref, revision=data.revision)
    if ref.prompt_field is None:
        return tokenize_texts(tokenizer, [r[ref.field] for r in rows], data.max_length)
    return qa_examples(tokenizer, [r[ref.prompt_field] for r in rows],
                       [r[ref.field] for r in rows], data.max_length, data.qa_template)


def load_examples(recipe: UnlearnRecipe, method: Method, request: Request, tokenizer):
    """(forget, retain, alternate) examples of one request; alternate is None unless the
    method prefers alternate responses (aligned with forget: unlearn.alternates)."""
    data = recipe.data
    retain = split_examples(tokenizer, data.source, data.retain, data)
    if method.needs_retain and not retain:
        raise LetheError(f"method {method.name} needs a retain set; set data.retain")
    if not method.needs_alternate:
        return split_examples(tokenizer, data.source, request.forget, data), retain, None
    from unlearn.alternates import alternate_columns, paired_examples

    ref = request.forget
    rows = read_rows(data.source, ref, alternate_columns(recipe.method), data.revision)
    forget, alternate = paired_examples(tokenizer, rows, ref.field, ref.prompt_field,
                                        recipe.method, data.max_length, seed=recipe.seed,
                                        template=data.qa_template)
    return forget, retain, alternate


def make_train_fn(recipe: UnlearnRecipe, tokenizer, guard: DivergenceGuard, resume):
    """`train_fn(model, dataset, collator, loss_fn, output_dir) -> model` (the shared trainer).

    Handed to methods that train more than once (task_vector, whp) so that every stage goes
    through the same TrainingArguments, DeepSpeed config, callbacks and guard.
    """

    def train_fn(model, dataset, collator, loss_fn, output_dir, desc="unlearn"):
        args = training_arguments(recipe.train, output_dir, seed=recipe.seed)
        trainer = LetheTrainer(model=model, args=args, train_dataset=dataset,
                               data_collator=collator, loss_fn=loss_fn, guard=guard,
                               progress_desc=desc, processing_class=tokenizer)
        trainer.train(resume_from_checkpoint=resume_checkpoint(output_dir, resume))
        return trainer

    return train_fn


def unlearn_request(recipe: UnlearnRecipe, method: Method, request: Request, start_spec: str,
                    resume) -> dict:
    """Unlearn one forget request starting from `start_spec`; save the model; return a record."""
    cfg = recipe.method
    tokenizer = load_tokenizer(start_spec, trust_remote_code=recipe.model.trust_remote_code)
    model = load_model(start_spec, dtype=recipe.model.dtype,
                       trust_remote_code=recipe.model.trust_remote_code)
    if method.edit is not None:
        return edit_request(recipe, method, request, start_spec, model, tokenizer)
    forget, retain, alternate = load_examples(recipe, method, request, tokenizer)
    collator = PairedCollator(tokenizer.pad_token_id)
    guard = DivergenceGuard(recipe.guard.max_abs_loss)
    train_fn = make_train_fn(recipe, tokenizer, guard, resume)
    trainer_dir = request.out_dir / "trainer"
    start = time.perf_counter()
    if method.run is not None:  # multi-stage methods drive the trainer themselves
        model = method.run(model=model, tokenizer=tokenizer, forget=forget, retain=retain,
                           cfg=cfg, train_fn=train_fn, collator=collator,
                           output_dir=trainer_dir, lora=recipe.lora)
    else:
        from unlearn.methods.reference import cached_ref_logp, make_reference

        if method.needs_ref_logp:  # computed once: no second model, no extra forward per step
            # ... and kept on disk, keyed by the starting weights and the token ids, so every
            # variant, seed and rerun from the same model on the same data reuses it
            batch_size = int(recipe.train.get("per_device_train_batch_size", 8))
            model_id = weights_key(start_spec)

            def cached(examples):
                return cached_ref_logp(model, examples, model_id=model_id, batch_size=batch_size,
                                       pad_token_id=tokenizer.pad_token_id) \
                    if examples else examples

            forget, retain, alternate = cached(forget), cached(retain), cached(alternate)
        model = apply_lora(model, recipe.lora)
        if method.prepare is not None:  # e.g. RMU freezes all but its layers (after LoRA)
            model = method.prepare(model, cfg)
        ref = make_reference(model, method, lora_enabled=recipe.lora is not None
                             and recipe.lora.enabled, cfg=cfg)
        dataset = PairedDataset(forget, retain, seed=recipe.seed, alternate=alternate)
        trainer = train_fn(model, dataset, collator, method_loss_fn(method, cfg, ref),
                           trainer_dir, desc=f"{method.name} {request.label}")
        model = trainer.model
        save_model(trainer, tokenizer, request, recipe, start_spec)
    seconds = time.perf_counter() - start
    if method.run is not None and is_main_process():
        save_plain(model, tokenizer, request.out_dir / "model", recipe, start_spec, request)
    return {"request": request.index, "label": request.label,
            "forget": to_dict(request.forget), "start": start_spec,
            "model": str(request.out_dir / "model"), "train_seconds": round(seconds, 1),
            "forget_examples": len(forget), "retain_examples": len(retain)}


def method_loss_fn(method: Method, cfg, ref):
    """`loss_fn(model, batch)` for the trainer; a stateful method (`Method.state`, e.g. PDU's
    dual variable) gets its state object, made once per request, as `state=`."""
    if method.state is None:
        return lambda m, batch: method.loss(m, batch, cfg, ref)
    state = method.state(cfg)
    return lambda m, batch: method.loss(m, batch, cfg, ref, state=state)


def weights_key(spec: str) -> str | None:
    """What identifies a local checkpoint's weights for caches: its content fingerprint plus
    each weight file's size and modification time (a model prepared again gets a new key even
    where the sampled bytes agree: a merged LoRA leaves the embeddings, stored first,
    untouched). None for hub ids (no cache)."""
    from lethe.loading import resolve_model

    src = resolve_model(spec)
    if src.kind not in ("dir", "gguf"):
        return None
    path = Path(src.path)
    files = [path] if path.is_file() else sorted(
        f for f in path.iterdir() if f.suffix in (".safetensors", ".bin", ".gguf", ".pt"))
    stamps = ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return f"{model_identity(spec)['weights_sha256_16']}:{stamps}"


def edit_request(recipe: UnlearnRecipe, method: Method, request: Request, start_spec: str,
                 model, tokenizer) -> dict:
    """Edits (ROME): rewrite weights in closed form from the request's rows, then save."""
    rows = load_table(recipe.data.source, config=request.forget.config,
                      split=request.forget.split, revision=recipe.data.revision).to_list()
    start = time.perf_counter()
    summary = method.edit(model, tokenizer, rows, recipe.method, recipe.data.source)
    seconds = time.perf_counter() - start
    if is_main_process():
        save_plain(model, tokenizer, request.out_dir / "model", recipe, start_spec, request)
    return {"request": request.index, "label": request.label, "forget": to_dict(request.forget),
            "start": start_spec, "model": str(request.out_dir / "model"),
            "train_seconds": round(seconds, 1), "edited_facts": len(rows), "edit": summary}


def save_model(trainer, tokenizer, request: Request, recipe: UnlearnRecipe, start_spec: str):
    """Save through the trainer (gathers ZeRO-3 shards); LoRA → adapter (+ merged if asked).

    The checkpoint is written to `model.saving` and renamed to `model` when complete, so
    `unlearn eval` (or a resumed run) never reads a half-written one.
    """
    out = request.out_dir / "model"
    tmp = out.with_name(out.name + ".saving")
    sync = trainer.accelerator.wait_for_everyone
    if is_main_process():
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of an interrupted save
    sync()
    trainer.save_model(str(tmp))  # every rank: gathers ZeRO-3 shards; rank 0 writes
    sync()
    if is_main_process():
        tokenizer.save_pretrained(tmp)
        write_model_card(tmp, recipe, start_spec, request)
        replace_dir(tmp, out)
        model = trainer.model
        if hasattr(model, "merge_and_unload") and (recipe.save.merge_lora or
                                                   len(recipe.requests.forget) > 1):
            # Sequential requests continue from a full model, so adapters are merged then.
            merged = model.merge_and_unload()
            save_plain(merged, tokenizer, request.out_dir / "model_merged", recipe, start_spec,
                       request)
    sync()  # the next request starts (on every rank) from what rank 0 has just renamed


def save_plain(model, tokenizer, out: Path, recipe, start_spec, request):
    """Save a plain (unwrapped) model to `out` atomically: written beside, then renamed."""
    tmp = out.with_name(out.name + ".saving")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    write_model_card(tmp, recipe, start_spec, request)
    replace_dir(tmp, out)


def write_model_card(out: Path, recipe: UnlearnRecipe, start_spec: str, request: Request):
    params = dump_yaml(recipe.method).strip()
    train = dump_yaml(recipe.train).strip() if recipe.train else "{}"
    card = f"""---
library_name: transformers
base_model: {start_spec}
tags: [lethe, unlearning, {recipe.method.name}]
---
# {recipe.name}: {recipe.method.name} unlearning of `{request.label}`

Produced by Lethe (`unlearn run`). Starting model: `{start_spec}`.
Forget set: `{recipe.data.source}` config `{request.forget.config}` split `{request.forget.split}`
(field `{request.forget.field}`); retain set: {_retain_text(recipe)}.
LoRA: {'r=%d on %s' % (recipe.lora.r, ', '.join(recipe.lora.target_modules))
       if recipe.lora and recipe.lora.enabled else 'no (full fine-tuning)'}.

## Method
```yaml
{params}
```

## Training arguments
```yaml
{train}
```
"""
    atomic_write_text(out / "README.md", card)


def _retain_text(recipe: UnlearnRecipe) -> str:
    r = recipe.data.retain
    return f"config `{r.config}` split `{r.split}`" if r else "none"


def load_ledger(root: Path) -> dict:
    path = root / "ledger.json"
    return json.loads(path.read_text()) if path.is_file() else {"requests": []}


def preflight(recipe: UnlearnRecipe, target: str) -> None:
    """Check the model and every split exist before anything is written or trained. (The
    `unlearn run` command has already run the whole `unlearn.preflight.preflight_run`; this
    guards callers of `run` from Python, with the same checks of the data.)"""
    from lethe.loading import resolve_model
    from lethe.preflight import Preflight
    from unlearn.preflight import check_unlearning_data

    pf = Preflight("unlearn run")
    pf.run("model.target", resolve_model, target)
    check_unlearning_data(pf, recipe, None)
    pf.finish()


def run(recipe: UnlearnRecipe, *, resume=False, overwrite=False) -> dict:
    """Unlearn every request of `recipe`. Returns the ledger.

    Rank 0 holds the lock of `output_dir` from before the ledger is read for resume to the
    last write (another run on the same directory fails at once, naming the holder).
    """
    with output_lock(recipe.output_dir, what="output_dir"):
        return _run(recipe, resume=resume, overwrite=overwrite)


def _run(recipe: UnlearnRecipe, *, resume=False, overwrite=False) -> dict:
    from lethe.outputs import prepare_output_dir

    method = get_method(recipe.method.name)
    target = recipe.target_spec()
    if not target:
        raise LetheError("model.target is not set and the recipe has no prepare: section")
    root = Path(recipe.output_dir)
    preflight(recipe, target)
    if is_main_process():
        prepare_output_dir(root, overwrite=overwrite, resume=bool(resume),
                           what="output_dir")
        atomic_write_text(root / "recipe.yaml", dump_yaml(recipe))
    ledger = load_ledger(root) if resume else {"requests": []}
    ledger.update(recipe=recipe.name, method=to_dict(recipe.method), target=target,
                  mode=recipe.requests.mode)
    done = {r["request"]: r for r in ledger["requests"]}
    previous = target
    for request in plan_requests(recipe):
        start = previous if recipe.requests.mode == "sequential" else target
        if request.index in done and Path(done[request.index]["model"]).is_dir():
            log.info("request %d (%s) already done; skipping", request.index, request.label)
        else:
            log.info("request %d: unlearning %s from %s", request.index, request.label, start)
            record = unlearn_request(recipe, method, request, start, resume)
            done[request.index] = record
            ledger["requests"] = [done[k] for k in sorted(done)]
            if is_main_process():
                write_json(root / "ledger.json", ledger)
        merged = request.out_dir / "model_merged"
        previous = str(merged if merged.is_dir() else request.out_dir / "model")
    if is_main_process():
        write_json(root / "ledger.json", ledger)
    return ledger


def model_entry(label: str, spec: str, recipe: UnlearnRecipe, role: str = "model"):
    """An evaluation entry that loads `spec` from disk only when its turn comes (the same
    builder as `unlearn eval`'s: adapters merged, on the first accelerator there is)."""
    from eval.muse.suite import ModelEntry

    return ModelEntry.from_spec(spec, label, role, dtype=recipe.model.dtype,
                                trust_remote_code=recipe.model.trust_remote_code)


def evaluate_run(recipe: UnlearnRecipe, runs: list[tuple[str, dict]],
                 batch_size: int | None = None) -> dict:
    """One six-way report over target, retrain and every unlearned checkpoint (rank 0).

    `runs` = [(label, ledger)]: one entry for a plain run, one per variant for a comparison.
    """
    from eval.muse.suite import evaluate_models

    models = []
    for label, ledger in runs:
        many = len(ledger["requests"]) > 1
        for record in ledger["requests"]:
            models.append(model_entry(f"{label}@{record['label']}" if many else label,
                                      record["model"], recipe))
    configs = {r.config for r in recipe.requests.forget}
    protocol = next(iter(configs)) if len(configs) == 1 and configs <= {"scal", "sust"} \
        and len(runs) == 1 else None
    retrain = recipe.retrain_spec()
    results = evaluate_models(
        models, data=recipe.eval.data or recipe.data.source, metrics=list(recipe.eval.metrics),
        target=model_entry("target", recipe.target_spec(), recipe, "target")
        if recipe.eval.include_target else None,
        retrain=model_entry("retrain", retrain, recipe, "retrain") if retrain else None,
        retrain_auc=None if retrain else recipe.model.retrain_auc,
        batch_size=batch_size or recipe.eval.batch_size, out_dir=Path(recipe.output_dir),
        protocol=protocol, data_revision=recipe.data.revision)
    return results


def run_recipe(rec: UnlearnRecipe, recipe_path: str, *, resume: bool, overwrite: bool,
               evaluate: bool) -> dict | None:
    """What `unlearn run` does after its preflight: prepare what is missing, unlearn every
    request (of every variant), evaluate on rank 0. Returns the results (None when not
    evaluated, and on other ranks)."""
    from lethe.outputs import prepare_output_dir
    from unlearn.prepare import ensure_world, prepare
    from unlearn.recipe import expand_variants

    if is_main_process():
        if rec.prepare is not None:
            prepare(rec)  # generates the world first when it is missing
        elif rec.world is not None:
            ensure_world(rec.world)
    _barrier()
    variants = expand_variants(rec, recipe_path)
    if variants:  # a comparison: every variant into output_dir/<label>, one report
        if is_main_process():
            prepare_output_dir(rec.output_dir, overwrite=overwrite, resume=resume,
                               what="output_dir")
        runs = [(label, run(v, resume=resume, overwrite=overwrite)) for label, v in variants]
    else:
        runs = [(rec.method.name, run(rec, resume=resume, overwrite=overwrite))]
    if not is_main_process() or not (rec.eval.enabled and evaluate):
        return None
    return evaluate_run(rec, runs)


def _barrier():
    """Other ranks wait while rank 0 generates the world / prepares models."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


__all__ = ["run", "run_recipe", "evaluate_run", "plan_requests", "model_identity"]
