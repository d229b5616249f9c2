"""What each long `detox` command reads, checked before it loads a model or writes anything.

- `detox rewrite` (`check_rewrite`, `check_rewrite_input`): the output file, the rewriter's
  model (with its adapter, which must fit that model), demonstration pool and retrieval
  embedder, the scorers best-of-n or --scores will load, then the input's lines and the ids an
  existing output already holds.
- `detox train` (`preflight_train`): the policy (an adapter warm start against its base) and
  LoRA target modules, the prompts table and folds (RL) or the parallel pairs (SFT), the model
  of every reward scorer the run will use (a classifier must have the label asked for), the
  trainer config and DeepSpeed file, output_dir, and disk for what will be saved.
- `detox train-classifier` (`preflight_classifier`): the encoder, the labelled table (text and
  label fields, folds, every label a class id below the number of labels), the trainer
  config, output_dir and disk.

Scorers declare what they load beside their registration (`eval.detox.registry.needs`);
each rewriter's config checks its own inputs (`check(pf, recipe, where)`, detox/rewrite/).
"""

from __future__ import annotations

import math
from pathlib import Path

from detox.rewrite.checks import check_rewriter, check_scorer
from detox.rewrite.recipe import RewriteRecipe
from detox.train.recipe import ClassifierRecipe, DetoxTrainRecipe
from lethe.preflight import (Preflight, check_disk, check_model, check_output_dir,
                             check_output_file, check_training_args, checkpoint_tensors,
                             lora_trainable, model_bytes, skeleton, training_bytes)

def check_rewrite(pf: Preflight, recipe: RewriteRecipe, *, input_file: str, output: str,
                  overwrite: bool, with_scores: bool) -> bool:
    """Output, rewriter and scorers of `detox rewrite`. Returns whether the input can be
    opened (its lines are checked by `check_rewrite_input`)."""
    from eval.detox.registry import KINDS

    to_stdout = output == "-"
    if not to_stdout and input_file != "-" and \
            Path(output).resolve() == Path(input_file).resolve():
        pf.problem(f"-o {output} is the input file; choose another output path")
    if to_stdout and overwrite:
        pf.problem("--overwrite needs an output file (-o OUT.jsonl)")
    if not to_stdout:
        check_output_file(pf, output, where="-o")
    check_rewriter(pf, recipe.rewriter, recipe)
    if with_scores:
        for kind in KINDS:
            check_scorer(pf, getattr(recipe.scorers, kind), f"scorers.{kind}")
    readable = input_file == "-" or Path(input_file).is_file()
    if not readable:
        pf.problem(f"input file not found: {input_file} (give a .jsonl file, or - for "
                   f"standard input)")
    return readable


def check_eval(pf: Preflight, recipe: RewriteRecipe, metrics, baselines) -> None:
    """`detox eval`: every scorer the chosen metrics call (its model, a classifier's label,
    an embedding head's shapes) and the baselines' own scorers, before anything is scored."""
    from detox.rewrite.recipe import rewriter_configs
    from eval.detox.joint import scorer_kinds

    for name in scorer_kinds(metrics):
        check_scorer(pf, getattr(recipe.scorers, name), f"scorers.{name}")
    for name in baselines:
        check_rewriter(pf, rewriter_configs()[name](), recipe, f"--baselines {name}")


def check_rewrite_input(pf: Preflight, path: Path, source: str, output: str, *,
                        overwrite: bool, on_error: str):
    """The input's lines and the ids an existing output already holds (read, not changed).
    Returns (io.Scan of the input, ids already done)."""
    from detox import io

    found = io.scan(path)
    if found.bad and on_error == "fail":
        pf.problem(f"{found.message(source)}; nothing was generated. Fix them or pass "
                   f"--on-error skip")
    done: set[str] = set()
    out = None if output == "-" else Path(output)
    if out is not None and out.is_file() and out.stat().st_size and not overwrite:
        recovered = pf.run("-o", io.recover_output, out, dry=True)
        keys = recovered.keys if recovered is not None else []
        foreign = [k for k in keys if k not in found.keys]
        if foreign:
            pf.problem(f"output {output} holds id {foreign[0]} which is not in {source} "
                       f"({len(foreign)} such ids): it belongs to another input; pass "
                       f"--overwrite or choose another -o")
        done = set(keys)
    pf.ok(f"input {source}: {found.valid} valid line(s), {len(found.bad)} bad, {len(done)} "
          f"already in {output}")
    return found, done


# ---------------------------------------------------------------------------------------------
# detox train


def reward_parts(recipe: DetoxTrainRecipe) -> list[str]:
    """The reward scorers a run loads: every weighted part, the classifier of the prompt
    filter, and both parts the held-out evaluation scores (as detox.train.rl builds them)."""
    parts = {k for k, w in recipe.rewards.weights_dict().items() if w > 0 and k != "length"}
    if recipe.filter.enabled:
        parts.add("appropriateness")
    if recipe.evaluate.enabled:
        parts |= {"appropriateness", "similarity"}
    return sorted(parts)


def _train_data(pf: Preflight, recipe: DetoxTrainRecipe) -> None:
    if recipe.algorithm == "sft":
        from detox.train.sft import load_pairs

        pairs = pf.run("pairs", load_pairs, recipe.pairs, recipe.seed)
        if pairs is not None:
            pf.ok(f"pairs {recipe.pairs.source}: {len(pairs)} pairs "
                  f"({recipe.pairs.input_field} -> {recipe.pairs.target_field})")
        return
    from detox.train.rl import _table_texts

    d = recipe.data
    folds = [("train", d.train_fold if d.fold_field else None)]
    if recipe.evaluate.enabled and d.fold_field and d.eval_fold:
        folds.append(("eval", d.eval_fold))
    for role, fold in folds:
        texts = pf.run("data", _table_texts, recipe, fold)
        if texts is None:
            continue
        if not texts and role == "train":
            pf.problem(f"data: no {d.text_field} text of {d.source}"
                       f"{f' in fold {fold}' if fold else ''} is left after data.max_words="
                       f"{d.max_words}; raise data.max_words")
        else:
            pf.ok(f"data {d.source}: {len(texts)} {role} prompt(s)"
                  f"{f' ({d.fold_field} = {fold})' if fold else ''}")


def _trainer_config(recipe: DetoxTrainRecipe):
    if recipe.algorithm == "sft":
        return None  # TrainingArguments (the default)
    from detox.train.rl import rl_config

    return lambda train, out: rl_config(recipe.algorithm, train, out, recipe.seed)


def _policy_disk(pf: Preflight, recipe: DetoxTrainRecipe, policy) -> None:
    counted = model_bytes(policy, recipe.model.dtype)
    if counted is None:
        pf.ok("disk: not estimated (the policy's parameter count is unknown)")
        return
    n, nbytes = counted
    if policy.kind == "adapter":  # a warm start: RL goes on training that adapter
        trained = sum(math.prod(t["shape"]) for t in checkpoint_tensors(policy.path).values())
    else:
        trained = lora_trainable(skeleton(policy.config, policy.task), recipe.lora) \
            if policy.config is not None else None
    final = (trained or n) * nbytes + (n * nbytes if recipe.lora and recipe.lora.merge else 0)
    ckpt, how = training_bytes(recipe.train, n_params=n, dtype_bytes=nbytes, trainable=trained)
    runs = max(1, len(recipe.sweep.weightings))
    check_disk(pf, recipe.output_dir, runs * (final + ckpt),
               f"{runs} run(s) x ({'adapter' if trained else 'model'} + {how})")


def preflight_train(recipe: DetoxTrainRecipe, *, resume=False, overwrite=False) -> Preflight:
    """Everything `detox train RECIPE` reads and writes; raises PreflightError."""
    from lethe.cli import is_main_process

    pf = Preflight("detox train")
    m = recipe.model
    policy = check_model(pf, m.name, where="model.name", revision=m.revision,
                         trust_remote_code=m.trust_remote_code)
    if policy is not None and policy.kind != "adapter" and recipe.lora is not None \
            and recipe.lora.enabled and policy.config is not None:
        from lethe.trainer import lora_config

        if pf.run("lora", lora_config, skeleton(policy.config, policy.task), recipe.lora):
            pf.ok(f"lora.target_modules {', '.join(recipe.lora.target_modules)}: found")
    _train_data(pf, recipe)
    if recipe.algorithm != "sft":
        for part in reward_parts(recipe):
            check_scorer(pf, getattr(recipe.rewards, part), f"rewards.{part}")
    check_training_args(pf, recipe.train, recipe.output_dir, build=_trainer_config(recipe))
    if is_main_process():  # other ranks would see rank 0's first files (they never write)
        check_output_dir(pf, recipe.output_dir, overwrite=overwrite, resume=bool(resume))
        _policy_disk(pf, recipe, policy)
    return pf.finish()


# ---------------------------------------------------------------------------------------------
# detox train-classifier


def preflight_classifier(recipe: ClassifierRecipe, *, resume=False,
                         overwrite=False) -> Preflight:
    """Everything `detox train-classifier RECIPE` reads and writes; raises PreflightError."""
    from detox.train.classifier import recipe_folds
    from lethe.cli import is_main_process

    pf = Preflight("detox train-classifier")
    m, n_labels = recipe.model, len(recipe.model.labels)
    if n_labels < 2:
        pf.problem("model.labels: a classifier needs at least two labels")
    head = recipe.kind == "embedding_head"
    info = None
    if head and m.name.startswith("hashing"):
        from eval.detox.similarity import make_embedder

        if pf.run("model.name", make_embedder, m.name) is not None:
            pf.ok(f"model.name {m.name}: hashing embedder (no weights)")
    else:
        info = check_model(pf, m.name, where="model.name",
                           task="encoder" if head else "sequence-classification",
                           revision=m.revision, trust_remote_code=m.trust_remote_code)
    where = "pairs" if recipe.pairs is not None else "data"
    source = recipe.pairs.source if recipe.pairs is not None else recipe.data.source
    folds = pf.run(where, recipe_folds, recipe)
    for key, (texts, labels) in (folds or {}).items():
        counts = [labels.count(c) for c in range(n_labels)]
        pf.ok(f"{where} {source} ({key}): {len(texts)} texts, label counts {counts}")
    if folds is not None and not folds.get("train", ([], []))[0]:
        pf.problem(f"{where}: no text in the training fold of {source}")
    if head:
        _classifier_tail(pf, recipe, None, resume, overwrite, is_main_process())
        return pf.finish()
    check_training_args(pf, recipe.train, recipe.output_dir)
    _classifier_tail(pf, recipe, info, resume, overwrite, is_main_process())
    return pf.finish()


def _classifier_tail(pf, recipe: ClassifierRecipe, info, resume, overwrite, main: bool) -> None:
    """The output directory and the disk the classifier (if counted) will take."""
    if not main:
        return
    check_output_dir(pf, recipe.output_dir, overwrite=overwrite, resume=bool(resume))
    counted = model_bytes(info, recipe.model.dtype) if info is not None else None
    if counted:
        n, nbytes = counted
        ckpt, how = training_bytes(recipe.train, n_params=n, dtype_bytes=nbytes)
        check_disk(pf, recipe.output_dir, n * nbytes + ckpt, f"the classifier, "
                   f"{n / 1e6:.2f}M parameters x {nbytes} bytes; {how}")
