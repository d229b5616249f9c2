"""`unlearn prepare`: the target and retrain checkpoints for a benchmark world.

MUSE measures unlearning against two models: the *target*, trained on forget + retain, and the
*retrain* oracle, trained on retain only (what a perfect unlearner would produce). Offline we
train both from scratch on the fictional world: a byte-level BPE tokenizer (`tokenizers`) and a
small Llama, through the shared trainer with plain next-token NLL. Both start from the same
seeded initialisation and use the same hyperparameters; only the data differs.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from lethe.errors import LetheError
from lethe.loading import load_model, load_table
from lethe.locks import output_lock
from lethe.outputs import replace_dir
from lethe.trainer import DivergenceGuard, LetheTrainer, training_arguments
from unlearn.data import LMCollator, PackedLMCollator, TextDataset, tokenize_texts
from unlearn.methods.losses import nll
from unlearn.recipe import PrepareSection, UnlearnRecipe, WorldSection

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


def ensure_world(world: WorldSection, overwrite: bool = False) -> Path:
    """Generate the benchmark world unless `world.dir` already holds one (and its TOFU layout
    in `world.tofu_dir`, when set, unless that holds one)."""
    from unlearn.world import WorldSpec, generate_world, write_world
    from unlearn.world_tofu import write_tofu

    spec = WorldSpec(seed=world.seed, size=world.size)
    outputs = [(Path(world.dir), "muse", "world.dir", write_world)]
    if world.tofu_dir:
        outputs.append((Path(world.tofu_dir), "tofu", "world.tofu_dir", write_tofu))
    generated = None
    for out, fmt, what, write in outputs:
        if (out / "world.json").is_file() and not overwrite:
            check_world_matches(out, spec, fmt)
            log.info("world exists: %s", out)
            continue
        with output_lock(out, what=what):  # two runs sharing a world generate it once
            if (out / "world.json").is_file() and not overwrite:
                check_world_matches(out, spec, fmt)
                continue
            log.info("generating the %s world (seed %d, %s layout) in %s", world.size,
                     world.seed, fmt, out)
            generated = generated or generate_world(spec)
            write(generated, out, overwrite=overwrite)
    return Path(world.dir)


def check_world_matches(out: Path, spec, fmt: str = "muse") -> None:
    """Refuse a world directory generated with other settings (an older generator version,
    another size table, seed, size or layout): models prepared on it would not match the
    recipe."""
    import json
    from dataclasses import asdict

    from unlearn.world import GENERATOR, SIZES, VERSION

    try:
        meta = json.loads((out / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LetheError(f"cannot read {out / 'world.json'} ({err}); delete {out} to "
                         f"regenerate the world") from None
    meta.setdefault("format", "muse")  # worlds written before the TOFU layout existed
    want = {"generator": GENERATOR, "version": VERSION, "seed": spec.seed, "size": spec.size,
            "sizes": asdict(SIZES[spec.size]) if spec.size in SIZES else None, "format": fmt}
    diff = [k for k, v in want.items() if meta.get(k) != v]
    if diff:
        raise LetheError(
            f"{out} holds a world generated with other settings ({', '.join(diff)} differ: "
            f"{', '.join(f'{k}={meta.get(k)!r}' for k in diff)}); delete it (and the models "
            f"prepared from it) or set world.dir to another directory")


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (no unknown characters) with <s> prepended to every text."""
    from tokenizers import (Regex, Tokenizer, decoders, models, pre_tokenizers, processors,
                            trainers)
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Every whitespace character is its own token. GPT-2's byte-level BPE glues a space to the
    # following word (" Foth"), so a prompt that ends in a space - MUSE's KnowMem prompt ends
    # in "Answer: " - leaves a lone space token that training never put before a word, and a
    # small model answers it with garbage. Isolated spaces make every prefix of a text
    # tokenise exactly as it did inside the text (costs ~1.7x tokens on the demo world).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_model(section: PrepareSection, tokenizer, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    a = section.arch
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=a.hidden_size, intermediate_size=a.intermediate_size,
        num_hidden_layers=a.num_layers, num_attention_heads=a.num_heads,
        num_key_value_heads=a.num_heads, max_position_embeddings=a.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)  # the same initial weights for target and retrain
    return LlamaForCausalLM(config)


def read_texts(source: str, config: str, split: str, field: str = "text") -> list[str]:
    return list(load_table(source, config=config, split=split, columns=(field,))[field])


def train_lm(model, tokenizer, texts: list[str], section: PrepareSection, out_dir: Path,
             seed: int, desc: str, position: int | None = None, shared: int | None = None,
             callbacks: list | None = None):
    """Next-token NLL training through the shared trainer; returns (trainer, seconds, last
    loss). `shared=k`: the first k texts are shared with another training of the same seed and
    are met in the same order there (lethe.trainer.PairedOrderSampler). `callbacks`: extra
    TrainerCallbacks (side-by-side prepare's ThreadHandoff)."""
    head = tokenize_texts(tokenizer, texts[:shared or 0], section.max_length)
    examples = head + tokenize_texts(tokenizer, texts[shared or 0:], section.max_length)
    shared_prefix = None if shared is None else len(head)
    args = training_arguments(section.train, out_dir / "trainer", seed=seed)
    collator = LMCollator(tokenizer.pad_token_id)
    if section.pack:
        packed = PackedLMCollator(tokenizer.pad_token_id, section.max_length)
        check_packing(model, collator, packed, examples[:args.per_device_train_batch_size])
        collator = packed
    trainer = LetheTrainer(model=model, args=args, train_dataset=TextDataset(examples),
                           data_collator=collator,
                           loss_fn=lambda m, batch: (nll(m, batch), {}), guard=DivergenceGuard(),
                           progress_desc=desc, progress_position=position,
                           shared_prefix=shared_prefix, callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return trainer, seconds, (losses[-1] if losses else float("nan"))


def check_packing(model, padded, packed, examples: list[dict]) -> None:
    """Refuse packing where the model would let packed documents see each other: the loss of
    one batch, padded and packed, must agree (they differ only in float summation order)."""
    with torch.no_grad():
        a, b = nll(model, padded(examples)).item(), nll(model, packed(examples)).item()
    if abs(a - b) > 1e-4 * max(1.0, abs(a)):
        raise LetheError(f"packed training rows change this model's loss ({b:.6f} vs {a:.6f} "
                         f"padded): its attention does not separate documents by position_ids; "
                         f"set prepare.pack: false")


def prepare(recipe: UnlearnRecipe, overwrite: bool = False) -> dict:
    """World → tokenizer → target and retrain checkpoints. Returns a summary dict."""
    if recipe.prepare is None:
        raise LetheError("the recipe has no `prepare:` section; add one (see recipes/demo.yaml)")
    section = recipe.prepare
    if recipe.shakespeare is not None:
        from unlearn.shakespeare import ensure_shakespeare

        source = str(ensure_shakespeare(recipe.shakespeare))
    elif recipe.world is not None:
        source = str(ensure_world(recipe.world, overwrite=False))
    else:
        source = recipe.data.source
    out = Path(section.out_dir)
    forget = read_texts(source, "raw", "forget")
    retain = [t for split in section.retain_splits for t in read_texts(source, "raw", split)]
    stand_in = (read_texts(source, "raw", section.retrain_stand_in)
                if section.retrain_stand_in else [])
    fingerprint = _fingerprint(forget, retain, stand_in)
    skipped = {"skipped": True, "out_dir": str(out)}
    if not overwrite and _already_prepared(out, fingerprint):
        return skipped
    with output_lock(out, what="prepare.out_dir"):  # one writer (rank 0 holds it)
        if not overwrite and _already_prepared(out, fingerprint):
            return skipped  # another run finished them while we looked
        return _train_models(recipe, source, forget, retain, stand_in, fingerprint)


def _already_prepared(out: Path, fingerprint: str) -> bool:
    if not all((out / name / "config.json").is_file() for name in ("target", "retrain")):
        return False
    _check_fingerprint(out, fingerprint)
    log.info("target and retrain exist in %s (pass --overwrite to retrain)", out)
    return True


def _train_models(recipe: UnlearnRecipe, source: str, forget: list[str], retain: list[str],
                  stand_in: list[str], fingerprint: str) -> dict:
    """Train the target (forget + retain) and retrain (retain [+ stand-in]) models into
    prepare.out_dir."""
    from lethe.cli import is_main_process

    section = recipe.prepare
    out = Path(section.out_dir)
    if section.base_model:
        from lethe.loading import load_tokenizer

        tokenizer = load_tokenizer(section.base_model)
    else:
        # The tokenizer is fitted to the retain text only, which both models train on, so that
        # forget and holdout names are tokenised alike (demo: 8.9% of holdout tokens never
        # occur in the target's training text, against 12.5% when fitted to all groups).
        # Measured alternatives: fitted to forget + retain, holdout names fall into rarer pieces
        # and the retrain model's membership AUC drops to 0.0; fitted to all three groups,
        # holdout-only tokens keep their random embeddings (never a training target), every
        # holdout text looks alien, and no unlearned model's PrivLeak left -100 (the
        # forget-only tokens would have to be pushed down to "never seen" level).
        tokenizer = train_tokenizer(retain, section.arch.vocab_size)
    summary = {"out_dir": str(out), "world": source, "data_sha256": fingerprint,
               "forget_docs": len(forget),
               "retain_docs": len(retain), "retrain_stand_in_docs": len(stand_in),
               "data_order": "retain first, in the same order for both models",
               "vocab_size": len(tokenizer), "models": {}}
    # examples per text group (each text chunks on its own, so the counts add up)
    n_forget, n_retain = (len(tokenize_texts(tokenizer, texts, section.max_length))
                          for texts in (forget, retain))
    steps = _steps(section, n_forget + n_retain)
    retrain = section
    if section.match_steps:  # as many optimizer steps as the target (more passes over less)
        retrain = replace(section, train={**section.train, "max_steps": steps})
    # Retain text first in both, met in the same order by both (PairedOrderSampler): the two
    # models then differ by the forget set (or the stand-in in its place), not by two unrelated
    # shuffles of the retain set, which moved KnowMem_r more than the data did (docs/results.md).
    jobs = [("target", retain + forget, section), ("retrain", retain + stand_in, retrain)]
    threads = _parallel_threads(section, steps)
    if threads:
        retrain_steps = steps if section.match_steps else _steps(
            retrain, n_retain + len(tokenize_texts(tokenizer, stand_in, section.max_length)))
        summary["models"] = _train_in_parallel(recipe, tokenizer, jobs, len(retain),
                                                threads, [steps, retrain_steps])
        summary["parallel"] = {"processes": len(jobs), "threads_each": threads}
    else:
        for name, texts, job_section in jobs:
            summary["models"][name] = _train_one(recipe, job_section, tokenizer, name, texts,
                                                  shared=len(retain))
    if is_main_process():
        from lethe.report import machine_info, write_json

        summary["machine"] = machine_info()
        write_json(out / "prepare.json", summary)
    return summary


def _train_one(recipe: UnlearnRecipe, section: PrepareSection, tokenizer, name: str,
               texts: list[str], shared: int | None = None, position: int | None = None,
               handoff: ThreadHandoff | None = None) -> dict:
    """Train and save one of the two models; returns its summary record."""
    out = Path(section.out_dir)
    model = (load_model(section.base_model) if section.base_model
             else build_model(section, tokenizer, recipe.seed))
    n_params = sum(p.numel() for p in model.parameters())
    if section.lora is not None and section.lora.enabled:
        from lethe.trainer import apply_lora

        torch.manual_seed(recipe.seed)  # the same adapter initialisation for both models
        model = apply_lora(model, section.lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cpu0 = _cpu_seconds()
    trainer, seconds, loss = train_lm(model, tokenizer, texts, section, out / f".{name}",
                                      recipe.seed, desc=f"prepare {name}", position=position,
                                      shared=shared, callbacks=[handoff] if handoff else None)
    cpu = _cpu_seconds() - cpu0
    final = out / name
    _save_model(trainer, tokenizer, final, scratch=out / f".{name}")
    log.info("%s: %d parameters (%d trained), %.0f s, final loss %.4f", name, n_params,
             trainable, seconds, loss)
    record = {"path": str(final), "parameters": n_params, "trained_parameters": trainable,
              "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1),
              "final_loss": loss, "train_docs": len(texts), "steps": trainer.state.global_step,
              "train_tokens": _tokens(trainer), "torch_threads": torch.get_num_threads()}
    if handoff is not None and handoff.waited is not None:
        record["thread_handoff"] = {"at_step": handoff.at, "threads_after": handoff.threads,
                                    "waited_seconds": round(handoff.waited, 1)}
    return record


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tokens(trainer) -> int:
    """Tokens the training passed over: one epoch's tokens times the epochs it ran."""
    per_epoch = sum(len(e["input_ids"]) for e in trainer.train_dataset.examples)
    return int(round(per_epoch * float(trainer.state.epoch or 0)))


def _steps(section: PrepareSection, n_examples: int) -> int:
    """Optimizer steps a training over `n_examples` takes, counted as transformers.Trainer
    counts them (batches per epoch, gradient accumulation, epochs; max_steps wins)."""
    import math

    train = section.train
    if int(train.get("max_steps", -1)) > 0:
        return int(train["max_steps"])
    batches = math.ceil(n_examples / int(train.get("per_device_train_batch_size", 8)))
    accumulation = int(train.get("gradient_accumulation_steps", 1))
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    return math.ceil(float(train.get("num_train_epochs", 3)) * per_epoch)


def _parallel_threads(section: PrepareSection, steps: int) -> int:
    """Threads per process when target and retrain train side by side, 0 for one after the
    other. Side by side only where it is safe and pays: CPU training, no launcher (each rank
    would spawn its own pair), no DeepSpeed (its engine wants the whole process group), and a
    run long enough to repay two fresh interpreters (~5 s each): >= 200 steps, or any
    fine-tuning of a pretrained base model (one of its steps takes seconds on a CPU)."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if section.parallel == "never":
        return 0
    if section.parallel == "auto":
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if cores < 2 or distributed or section.train.get("deepspeed") \
                or torch.cuda.is_available() or (steps < 200 and not section.base_model):
            return 0
    return max(1, cores // 2)


class ThreadHandoff(TrainerCallback):
    """Side-by-side prepare: after optimizer step `at`, wait until `signal` exists (the other
    training has finished and saved), then train on with `threads` torch threads.

    Why: fine-tuning SmolLM2 on Shakespeare, the target takes 100 steps and the retrain 50; with
    one thread each the target trained its last ~50 steps alone, leaving a core idle for 7 of
    15 minutes. A LoRA step there takes 9.4 s on one thread and 5.4 s on two (idle 2-core Xeon,
    tests/bench/bench_lora_vs_full.py). Why wait instead of switching the moment the other
    finishes: gradients summed by two threads differ from one thread's in the last bits (the
    loss does not), so a switch at a wall-clock-dependent step would make the model depend on
    timing; at a step fixed in advance (the other's step count) a rerun gives the same model.
    Both run at one step per ~same time, so the wait is short (recorded in prepare.json).
    """

    def __init__(self, at: int, threads: int, signal: Path, poll: float = 0.2):
        self.at, self.threads, self.signal, self.poll = at, threads, Path(signal), poll
        self.waited: float | None = None  # seconds spent waiting, once the handoff happened

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step != self.at or self.waited is not None:
            return
        start = time.perf_counter()
        while not self.signal.exists():
            time.sleep(self.poll)
        self.waited = time.perf_counter() - start
        torch.set_num_threads(self.threads)
        log.info("the other training finished: %d thread(s) from step %d on (waited %.1f s)",
                 self.threads, self.at, self.waited)


def _train_in_parallel(recipe: UnlearnRecipe, tokenizer, jobs, shared: int,
                       threads: int, steps: list[int] | None = None) -> dict:
    """Both trainings at once in two spawned processes (fresh interpreters: no forked OpenMP
    or tokenizer threads); a failure in either is re-raised here with its own message. The
    children never outlive this process: they are terminated when it stops for any reason
    (an error in the other child, Ctrl-C), and die with it when it is killed (_die_with).

    `steps`: each job's optimizer steps; where they differ, the longer job takes over the
    shorter one's threads after the shorter one's last step (ThreadHandoff)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    log.info("training %s side by side, %d thread(s) each",
             " and ".join(name for name, *_ in jobs), threads)
    out = Path(jobs[0][2].out_dir)
    signals = {name: out / f".{name}.trained" for name, *_ in jobs}
    for signal in signals.values():  # left by a killed run: would end a wait early
        signal.unlink(missing_ok=True)
    handoffs: dict[str, ThreadHandoff] = {}
    if steps is not None and len(jobs) == 2 and steps[0] != steps[1]:
        short, long = sorted(range(2), key=lambda i: steps[i])
        handoffs[jobs[long][0]] = ThreadHandoff(steps[short], 2 * threads,
                                                signals[jobs[short][0]])
    pool = ProcessPoolExecutor(max_workers=len(jobs),
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {name: pool.submit(_child_train, recipe, job_section, tokenizer, name, texts,
                                     shared, threads, i, os.getpid(), signals[name],
                                     handoffs.get(name))
                   for i, (name, texts, job_section) in enumerate(jobs)}
        results = _results_or_first_error(futures)
        # Let idle workers exit by themselves: terminating them leaves their queue semaphores
        # behind ("resource_tracker: ... leaked semaphore objects" at the end of every run)
        pool.shutdown(wait=True)
        return results
    except BrokenProcessPool:
        raise LetheError("a training process of unlearn prepare died (killed, or out of "
                         "memory?); rerun, or set prepare.parallel: never to train one "
                         "model at a time") from None
    finally:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()  # mid-training after an error or Ctrl-C
        pool.shutdown(wait=False, cancel_futures=True)
        for signal in signals.values():
            signal.unlink(missing_ok=True)


def _results_or_first_error(futures: dict) -> dict:
    """{name: result} of every future; the first failure is raised the moment it happens, not
    when its turn in the dict comes: the other training may be waiting at its ThreadHandoff
    for a signal the failed one will never write."""
    from concurrent.futures import FIRST_EXCEPTION, wait

    done, _ = wait(list(futures.values()), return_when=FIRST_EXCEPTION)
    for future in done:
        if future.exception() is not None:
            future.result()  # re-raises it
    return {name: future.result() for name, future in futures.items()}


def _die_with(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG), so a
    killed `unlearn prepare` leaves no orphan training on; elsewhere, best effort."""
    import ctypes
    import os
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _child_train(recipe: UnlearnRecipe, section: PrepareSection, tokenizer, name: str,
                 texts: list[str], shared: int, threads: int, position: int,
                 parent: int, done: Path | None = None,
                 handoff: ThreadHandoff | None = None) -> dict:
    """One side-by-side training; touches `done` when its model is saved (the other
    training's ThreadHandoff waits for it)."""
    import os

    _die_with(parent)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "datasets", "DeepSpeed", "deepspeed", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    record = _train_one(recipe, section, tokenizer, name, texts, shared, position=position,
                        handoff=handoff)
    if done is not None:
        Path(done).touch()
    return record


def _save_model(trainer, tokenizer, final: Path, scratch: Path) -> None:
    """Save to a temp dir renamed to `final` when complete (readers never see half a model);
    only rank 0 touches files, the others take part in gathering ZeRO-3 shards."""
    from lethe.cli import is_main_process

    tmp = final.with_name(f".{final.name}.saving")
    main, sync = is_main_process(), trainer.accelerator.wait_for_everyone
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    sync()
    if hasattr(trainer.model, "merge_and_unload"):  # prepare.lora: save the merged weights
        if main:  # (the preflight refuses LoRA with DeepSpeed, so there is nothing to gather)
            trainer.model.merge_and_unload().save_pretrained(tmp, safe_serialization=True)
    else:
        trainer.save_model(str(tmp))  # every rank: gathers ZeRO-3 partitions into full weights
    sync()
    if main:
        tokenizer.save_pretrained(tmp)
        replace_dir(tmp, final)
        shutil.rmtree(scratch, ignore_errors=True)
    sync()


def _fingerprint(forget: list[str], retain: list[str], stand_in: list[str] = ()) -> str:
    """sha256 of the training texts: which data the prepared models saw (without a stand-in,
    the same digest as before the stand-in existed)."""
    import hashlib

    h = hashlib.sha256()
    parts = [("forget", forget), ("retain", retain)]
    parts += [("stand_in", stand_in)] if stand_in else []
    for name, texts in parts:
        h.update(f"{name}:{len(texts)}\0".encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\0")
    return h.hexdigest()


def _check_fingerprint(out: Path, fingerprint: str) -> None:
    """Refuse models that `prepare.json` says were trained on other data."""
    import json

    record = out / "prepare.json"
    if not record.is_file():
        return  # prepared by hand or by an older version: nothing to compare
    try:
        seen = json.loads(record.read_text(encoding="utf-8")).get("data_sha256")
    except (OSError, ValueError):
        seen = None
    if seen is not None and seen != fingerprint:
        raise LetheError(f"the models in {out} were trained on other data than the recipe's "
                         f"world/data now holds; pass --overwrite to retrain them")
