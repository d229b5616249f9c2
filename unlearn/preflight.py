"""What each long `unlearn` command reads, checked before it trains or writes anything.

- `unlearn run` / `unlearn prepare` (`preflight_run`, `preflight_prepare`): the data the command
  generates itself (the world, the Shakespeare builder) is built in memory and checked before
  it is written, naming the setting to raise when a split comes out empty; then every split a
  stage reads (prepare's training text, each forget request and the retain set, the method's
  own tables such as ROME's facts and covariance corpus, every MUSE metric's tables, the
  scal/sust protocol splits), the target and retrain models (or that prepare will train
  them), the PrivLeak reference, LoRA target modules, the trainer settings and DeepSpeed
  config, the output directories and the free disk for what will be saved.
- `unlearn eval` (`preflight_eval`) and `unlearn attack` (`preflight_attack`): names and
  options, data tables, every model and tokenizer, the output directory.

The generic checks are in `lethe.preflight`; the MUSE metrics declare the tables they read
beside their registration (`eval.muse.registry.Metric.splits`), so this asks the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lethe.cli import is_main_process
from lethe.errors import LetheError
from lethe.preflight import (Preflight, check_device, check_disk, check_model,
                             check_output_dir, check_table, check_training_args, lora_trainable,
                             model_bytes, skeleton, training_bytes)
from unlearn.recipe import UnlearnRecipe


@dataclass(frozen=True)
class Generated:
    """Data the command will write itself, built in memory so it is checked first."""

    dir: Path  # where it will be written
    tables: dict | None  # config -> split -> rows (None: `dir` exists, read it from disk)
    hint: Callable[[str, str], str]  # (config, split) -> how to fill that split
    more: dict = field(default_factory=dict)  # other directory -> its tables (TOFU layout)

    def rows_for(self, source: str) -> dict | None:
        where = Path(source).absolute()
        if where == self.dir.absolute() and self.tables is not None:
            return self.tables
        return next((t for d, t in self.more.items() if Path(d).absolute() == where), None)


def generated_data(pf: Preflight, recipe: UnlearnRecipe) -> Generated | None:
    """The world or Shakespeare data `unlearn run`/`prepare` would generate (not yet on disk),
    in memory; None when it exists (then it is read from disk) or nothing is generated."""
    if recipe.prepare is not None and recipe.shakespeare is not None:
        from unlearn.shakespeare import build, setting_for

        section = recipe.shakespeare
        out = Path(section.dir)
        if (out / "corpus.json").is_file():
            return None
        if out.exists():
            pf.problem(f"shakespeare.dir {out} exists but holds no corpus.json; remove it or "
                       f"choose another shakespeare.dir")
        data = pf.run("shakespeare", build, section)
        return None if data is None else \
            Generated(out, data, lambda config, split: setting_for(section, config, split))
    if recipe.world is None:
        return None
    return _generated_world(pf, recipe.world)


def _generated_world(pf: Preflight, w) -> Generated | None:
    """The world (and its TOFU layout, `world.tofu_dir`) that will be generated, in memory."""
    from unlearn.prepare import check_world_matches
    from unlearn.world import WorldSpec, generate_world

    spec = WorldSpec(seed=w.seed, size=w.size)
    missing = {}
    for out, fmt, what in [(Path(w.dir), "muse", "world.dir")] + (
            [(Path(w.tofu_dir), "tofu", "world.tofu_dir")] if w.tofu_dir else []):
        if (out / "world.json").is_file():
            pf.run("world", check_world_matches, out, spec, fmt)
            continue
        if out.is_dir() and any(out.iterdir()):
            pf.problem(f"{what} {out} is not empty and holds no world.json; remove it or "
                       f"choose another {what}")
        missing[fmt] = out
    if not missing:
        return None
    world = pf.run("world", generate_world, spec)
    if world is None:
        return None
    tables = {}
    if "tofu" in missing:
        from unlearn.world_tofu import tofu_tables

        tables[missing["tofu"]] = pf.run("world.tofu_dir", tofu_tables, world) or {}
    return Generated(missing.get("muse", Path(w.dir)),
                     world.data if "muse" in missing else None,
                     lambda config, split: f"a larger world.size (now {w.size})", more=tables)


def _table(pf: Preflight, gen: Generated | None, source: str, config, split, fields, *,
           where: str, revision=None, columns=()) -> int | None:
    rows = gen.rows_for(source) if gen else None
    return check_table(pf, source, config=config, split=split, text=tuple(fields),
                       columns=tuple(columns), revision=revision, where=where, memory=rows,
                       hint=gen.hint(config, split) if rows is not None else "")


# ---------------------------------------------------------------------------------------------
# unlearn prepare


def prepare_source(recipe: UnlearnRecipe) -> str:
    """The dataset `unlearn prepare` trains on (as `unlearn.prepare.prepare` chooses it)."""
    if recipe.shakespeare is not None:
        return recipe.shakespeare.dir
    if recipe.world is not None:
        return recipe.world.dir
    return recipe.data.source


def check_prepare(pf: Preflight, recipe: UnlearnRecipe, gen: Generated | None, *,
                  overwrite: bool = False) -> tuple[int, int] | None:
    """The training text, base model, trainer settings, out_dir and disk of `prepare:`.
    Returns (parameters, bytes per parameter) of the models it will train, if it trains."""
    section = recipe.prepare
    if section is None:
        pf.problem("the recipe has no `prepare:` section; add one (see recipes/demo.yaml)")
        return None
    source = prepare_source(recipe)
    stand_in = (section.retrain_stand_in,) if section.retrain_stand_in else ()
    for split in ("forget", *section.retain_splits, *stand_in):
        _table(pf, gen, source, "raw", split, ("text",), where="prepare")
    out = Path(section.out_dir)
    if all((out / n / "config.json").is_file() for n in ("target", "retrain")) and not overwrite:
        pf.ok(f"prepare.out_dir {out}: target and retrain exist (kept; --overwrite retrains)")
        return None
    from lethe.outputs import writable_problem

    problem = writable_problem(out, "prepare.out_dir")
    pf.problem(problem) if problem else pf.ok(f"prepare.out_dir {out}: writable")
    check_training_args(pf, section.train, out / ".target", where="prepare.train")
    counted = _prepare_parameters(pf, section)
    if counted:
        n, nbytes = counted
        ckpt, how = training_bytes(section.train, n_params=n, dtype_bytes=nbytes)
        # both models stay; each one's trainer directory is removed once it is saved
        check_disk(pf, out, 2 * n * nbytes + ckpt, f"target + retrain, {n / 1e6:.2f}M "
                   f"parameters x {nbytes} bytes each; {how}", where="prepare disk")
    return counted


def _prepare_parameters(pf: Preflight, section) -> tuple[int, int] | None:
    lora = section.lora is not None and section.lora.enabled
    if lora and not section.base_model:
        pf.problem("prepare.lora: LoRA fine-tunes a pretrained model; set prepare.base_model "
                   "or remove prepare.lora")
    if lora and section.train.get("deepspeed"):
        pf.problem("prepare.lora with prepare.train.deepspeed: the adapters are merged on one "
                   "process before saving; remove one of the two")
    if section.base_model:
        info = check_model(pf, section.base_model, where="prepare.base_model")
        if lora and info is not None and info.config:
            from lethe.trainer import lora_config

            model = skeleton(info.config, info.task)
            if model is not None and pf.run("prepare.lora", lora_config, model, section.lora):
                pf.ok(f"prepare.lora.target_modules {', '.join(section.lora.target_modules)}: "
                      f"found")
        return model_bytes(info)
    from transformers import LlamaConfig

    a = section.arch  # the shape unlearn.prepare.build_model trains from scratch (fp32)
    config = LlamaConfig(vocab_size=a.vocab_size, hidden_size=a.hidden_size,
                         intermediate_size=a.intermediate_size, num_hidden_layers=a.num_layers,
                         num_attention_heads=a.num_heads, num_key_value_heads=a.num_heads,
                         max_position_embeddings=a.max_position_embeddings,
                         tie_word_embeddings=True)
    model = skeleton(config)
    return (sum(p.numel() for p in model.parameters()), 4) if model is not None else None


def preflight_prepare(recipe: UnlearnRecipe, *, overwrite: bool = False) -> Preflight:
    """Everything `unlearn prepare RECIPE` reads and writes; raises PreflightError."""
    pf = Preflight("unlearn prepare")
    gen = generated_data(pf, recipe)
    check_prepare(pf, recipe, gen, overwrite=overwrite)
    return pf.finish()


# ---------------------------------------------------------------------------------------------
# unlearn run


def produced_by_prepare(recipe: UnlearnRecipe, spec: str | None) -> bool:
    """`spec` is a model `prepare:` will train in this run (not on disk yet)."""
    if recipe.prepare is None or not spec or (Path(spec) / "config.json").is_file():
        return False
    out = Path(recipe.prepare.out_dir).absolute()
    return Path(spec).absolute() in (out / "target", out / "retrain")


def check_run_model(pf: Preflight, recipe: UnlearnRecipe, spec: str, where: str):
    if produced_by_prepare(recipe, spec):
        pf.ok(f"{where} {spec}: trained by prepare in this run")
        return None
    return check_model(pf, spec, where=where,
                       trust_remote_code=recipe.model.trust_remote_code)


def check_unlearning(pf: Preflight, recipe: UnlearnRecipe, gen: Generated | None,
                     tag: str = ""):
    """One (variant's) unlearning: target, method needs, request/retain splits, LoRA and
    trainer settings. Returns the target's ModelInfo (None if unknown)."""
    from unlearn.methods import get_method

    where = f"variants.{tag}: " if tag else ""
    target = recipe.target_spec()
    if not target:
        pf.problem(f"{where}model.target is not set and the recipe has no prepare: section")
    info = check_run_model(pf, recipe, target, f"{where}model.target") if target else None
    method = get_method(recipe.method.name)
    if method.needs_retain and not recipe.data.retain:
        pf.problem(f"{where}method {method.name} needs a retain set; set data.retain")
    requests = recipe.requests
    refused = recipe.method.request_problem(requests.mode, len(requests.forget or (None,)))
    if refused:
        pf.problem(f"{where}method {method.name}: {refused}")
    check_unlearning_data(pf, recipe, gen, where=f"{where}data")
    if recipe.lora is not None and recipe.lora.enabled and info is not None and info.config:
        from lethe.trainer import lora_config

        model = skeleton(info.config, info.task)
        if model is not None and pf.run(f"{where}lora", lora_config, model, recipe.lora):
            pf.ok(f"{where}lora.target_modules {', '.join(recipe.lora.target_modules)}: found")
    if method.edit is None:
        check_training_args(pf, recipe.train, Path(recipe.output_dir) / "trainer",
                            where=f"{where}train")
    return info


def check_unlearning_data(pf: Preflight, recipe: UnlearnRecipe, gen: Generated | None, *,
                          where: str = "data") -> None:
    """Every forget request and the retain split (their text fields), plus what the method
    itself declares it reads (`Method.reads`)."""
    from unlearn.methods import get_method

    d = recipe.data
    refs = list(recipe.requests.forget or (d.forget,)) + ([d.retain] if d.retain else [])
    for ref in refs:
        _table(pf, gen, d.source, ref.config, ref.split, ref.fields, where=where,
               revision=d.revision)
    method = get_method(recipe.method.name)
    if method.reads is not None:
        for ref in recipe.requests.forget or (d.forget,):
            for source, config, split, fields, *lists in method.reads(recipe.method,
                                                                       d.source, ref):
                _table(pf, gen, source, config, split, fields, where=f"method {method.name}",
                       revision=d.revision, columns=lists[0] if lists else ())


def check_run_eval(pf: Preflight, recipe: UnlearnRecipe, gen: Generated | None,
                   n_variants: int) -> None:
    """The MUSE metrics asked for: their names, the PrivLeak reference, every table each
    metric declares it reads, the scal/sust protocol splits, the retrain model."""
    from eval.muse.privleak import resolve_retrain_auc
    from eval.muse.registry import SuiteSettings
    from eval.muse.registry import metrics as registered
    from eval.muse.suite import resolve_metrics

    retrain = recipe.retrain_spec()
    has_reference = retrain is not None or recipe.model.retrain_auc is not None
    # names asked for explicitly are checked here, with a recipe's wording for privleak; an
    # empty list means MUSE's defaults, privleak only with a reference (as the suite does)
    asked = list(recipe.eval.metrics)
    names = pf.run("eval.metrics", resolve_metrics, asked,
                   have_reference=has_reference or bool(asked),
                   have_retrain_model=retrain is not None or bool(asked))
    if not names:
        return
    needing = [n for n in names if registered()[n].needs_retrain_model]
    if needing and retrain is None:
        pf.problem(f"eval.metrics: {needing[0]} compares with the retrain model's own scores: "
                   f"set model.retrain (or a prepare: section), or remove {needing[0]}")
    needing = [n for n in names if registered()[n].needs_reference]
    if needing and not has_reference:
        pf.problem(f"eval.metrics: {needing[0]} needs a retrain reference: set model.retrain "
                   f"(a retrain checkpoint) or model.retrain_auc (a number in (0, 1], muse-news "
                   f"or muse-books), or remove {needing[0]} from eval.metrics")
    if retrain:
        check_run_model(pf, recipe, retrain, "model.retrain")
    elif recipe.model.retrain_auc is not None:
        ref = pf.run("model.retrain_auc", resolve_retrain_auc, recipe.model.retrain_auc,
                     k=SuiteSettings().min_k)
        if ref is not None:
            pf.ok(f"model.retrain_auc: PrivLeak reference AUC {ref.auc} ({ref.source})")
    source = recipe.eval.data or recipe.data.source
    for name in names:
        for sp in registered()[name].splits:
            sp = sp.resolved(SuiteSettings())  # the settings evaluate_run evaluates with
            _table(pf, gen, source, sp.config, sp.split, sp.text_columns, where=f"eval ({name})",
                   revision=recipe.data.revision, columns=sp.lists)
    configs = {r.config for r in recipe.requests.forget}
    if n_variants == 1 and len(configs) == 1 and configs <= {"scal", "sust"}:
        proto = next(iter(configs))  # evaluate_run tabulates {proto}/forget_1..N
        for i in range(1, len(recipe.requests.forget) + 1):
            _table(pf, gen, source, proto, f"forget_{i}", ("text",), where=f"eval ({proto})",
                   revision=recipe.data.revision)


def run_disk(pf: Preflight, recipe: UnlearnRecipe, recipes: list[UnlearnRecipe], info,
             prepared: tuple[int, int] | None = None) -> None:
    """Free space for every checkpoint the run saves: per request the model (the adapter
    under LoRA, plus the merged model when it is written) and the trainer's checkpoints.
    `prepared`: (parameters, bytes) of a target prepare has still to train."""
    from unlearn.methods import get_method

    counted = model_bytes(info, recipe.model.dtype) or prepared
    if counted is None:
        pf.ok("disk: not estimated (the target's parameter count is unknown)")
        return
    n, nbytes = counted
    model = skeleton(info.config, info.task) if recipe.lora and info and info.config else None
    total, parts = 0, {}  # description -> how many variants share it (said once, counted)
    for r in recipes:
        method = get_method(r.method.name)
        requests = max(1, len(r.requests.forget))
        lora = None if method.edit or method.run else lora_trainable(model, r.lora)
        final = n * nbytes if lora is None else lora * nbytes + (
            n * nbytes if r.save.merge_lora or requests > 1 else 0)
        ckpt, how = (0, "no trainer") if method.edit else \
            training_bytes(r.train, n_params=n, dtype_bytes=nbytes, trainable=lora)
        total += requests * (final + ckpt)
        saved = "model" if lora is None else "adapter + merged model" if final > lora * nbytes \
            else "adapter"
        part = f"{requests} request(s) x ({saved} + {how})"
        parts[part] = parts.get(part, 0) + 1
    check_disk(pf, recipe.output_dir, total, f"{n / 1e6:.2f}M parameters x {nbytes} bytes; "
               + "; ".join(p if k == 1 else f"{k} variants x {p}" for p, k in parts.items()))


def preflight_run(recipe: UnlearnRecipe, *, resume: bool = False, overwrite: bool = False,
                  evaluate: bool = True) -> Preflight:
    """Everything `unlearn run RECIPE` will read and write, checked before prepare trains or
    anything is written; raises PreflightError listing every problem."""
    from unlearn.recipe import expand_variants

    pf = Preflight("unlearn run")
    gen = generated_data(pf, recipe)
    prepared = check_prepare(pf, recipe, gen) if recipe.prepare is not None else None
    variants = expand_variants(recipe) or [("", recipe)]
    infos = [check_unlearning(pf, v, gen, tag) for tag, v in variants]
    if evaluate and recipe.eval.enabled:
        check_run_eval(pf, recipe, gen, len(variants))
    else:
        pf.ok("eval: skipped (--no-eval or eval.enabled: false)")
    if is_main_process():  # other ranks would see rank 0's first files (they never write)
        check_output_dir(pf, recipe.output_dir, overwrite=overwrite, resume=resume)
        run_disk(pf, recipe, [v for _, v in variants], infos[0], prepared)
    return pf.finish()


# ---------------------------------------------------------------------------------------------
# unlearn eval / unlearn attack


@dataclass(frozen=True)
class EvalPlan:
    """What `unlearn eval` resolved while checking."""

    labels: list  # row label of each MODEL
    metrics: list  # metric names, validated
    reference: object  # eval.muse.privleak.RetrainReference from --retrain-auc, or None
    settings: object  # eval.muse.SuiteSettings
    out: Path  # the output directory
    harness: object = None  # eval.lm_harness.HarnessSettings of --lm-eval, or None


def preflight_eval(models, *, data, labels: Callable[[], list], retrain, retrain_auc, target,
                   protocol, metrics, out: Callable[[list], Path], overwrite, settings: dict,
                   revision, data_revision, device, benchmark: str = "muse",
                   mia_reference=None, harness=None) -> tuple[Preflight, EvalPlan]:
    """Every name, reference, table, model and the output directory `unlearn eval` uses.
    `labels()` gives the row labels; `out(labels)` the output directory."""
    from eval.muse import SuiteSettings, resolve_metrics
    from eval.muse.privleak import resolve_retrain_auc
    from eval.muse.protocols import protocol_steps

    pf = Preflight("unlearn eval")
    labels = pf.run("--labels", labels) or []
    if retrain and retrain_auc is not None:
        pf.problem("give either --retrain MODEL or --retrain-auc, not both")
    suite = pf.run("", SuiteSettings, **settings)
    reference = pf.run("", resolve_retrain_auc, retrain_auc, k=settings["min_k"]) \
        if retrain_auc is not None else None
    chosen = pf.run("", resolve_metrics, metrics,
                    have_reference=bool(retrain) or retrain_auc is not None,
                    have_retrain_model=bool(retrain), benchmark=benchmark) or []
    extra = [role for role, spec in (("target", target), ("retrain", retrain)) if spec]
    if labels and len(set(labels + extra)) < len(labels) + len(extra):
        pf.problem(f"labels must be unique and 'target'/'retrain' are taken by --target/"
                   f"--retrain; got {', '.join(labels + extra)}")
    check_eval_tables(pf, data, chosen, suite or SuiteSettings(), data_revision)
    if protocol and labels:
        if pf.run("--protocol", protocol_steps, protocol, data, labels, revision=data_revision):
            pf.ok(f"--protocol {protocol}: {protocol}/forget_1..{len(labels)} found")
    check_mia_and_harness(pf, suite, chosen, mia_reference, harness)
    check_device(pf, device)
    for spec, where in [(m, f"MODEL {m}") for m in models] + [
            (retrain, "--retrain"), (target, "--target"), (mia_reference, "--reference")]:
        if spec:
            check_model(pf, spec, where=where, revision=revision)
    out = Path(out(labels or ["eval"]))
    check_output_dir(pf, out, overwrite=overwrite, where="--out")
    return pf.finish(), EvalPlan(labels, chosen, reference, suite, out, harness)


def check_eval_tables(pf: Preflight, data, names, suite, revision) -> None:
    """Every table the chosen metrics declare (TOFU's {forget} resolved by the settings)."""
    from eval.muse.registry import metrics as registered

    for name in names:
        for sp in registered()[name].splits:
            sp = sp.resolved(suite)
            check_table(pf, data, config=sp.config, split=sp.split, text=sp.text_columns,
                        columns=sp.lists, revision=revision, where=f"--data ({name})")


def check_mia_and_harness(pf: Preflight, suite, chosen, mia_reference, harness) -> None:
    """--mia against --reference; --lm-eval's package and task names."""
    if suite is not None and "ref" in (suite.mia or ()) and not mia_reference:
        pf.problem("--mia ref needs a reference model: pass --reference MODEL")
    if mia_reference and "privleak" not in chosen:
        pf.problem("--reference is the `ref` MIA score's model, which only privleak reports; "
                   "add privleak to --metrics or drop --reference")
    if harness is not None:
        from eval.lm_harness import task_manager

        if pf.run("--lm-eval", task_manager, harness) is not None:
            pf.ok(f"--lm-eval: tasks {', '.join(harness.tasks)} found")


def preflight_attack(model, *, data, attacks, out, overwrite, options: dict):
    """Attack names; for extraction attacks --layers, the facts and --base; for recovery
    attacks (relearn, quantize) --target, the plan, the MUSE tables and the relearning slices;
    MODEL, the tokenizers, --out. Returns (Preflight, RecoveryPlan or None)."""
    from eval.attacks.extraction import ATTACKS
    from lethe.recipe import nearest
    from unlearn.robustness import RECOVERY_ATTACKS

    pf = Preflight("unlearn attack")
    names = [a.strip() for a in attacks.split(",") if a.strip()]
    valid = sorted({*ATTACKS, *RECOVERY_ATTACKS})
    for name in names:
        if name not in valid:
            pf.problem(f"unknown attack '{name}'{nearest(name, valid)}; valid: "
                       f"{', '.join(valid)}")
    if not names:
        pf.problem("--attacks is empty; name at least one attack")
    check_device(pf, options["device"])
    info = check_model(pf, model, where="MODEL")
    if any(n in ATTACKS for n in names):
        _check_extraction(pf, model, info, data, options)
    plan = None
    if any(n in RECOVERY_ATTACKS for n in names):
        plan = check_recovery(pf, model, info, data, names, options)
    check_output_dir(pf, out, overwrite=overwrite, where="--out")
    return pf.finish(), plan


def _same_vocab(pf: Preflight, info, other, *, model: str, spec: str, where: str, why: str):
    if info and other and info.tokenizer is not None and other.tokenizer is not None \
            and info.tokenizer.get_vocab() != other.tokenizer.get_vocab():
        pf.problem(f"{where} {spec} has a different tokenizer from {model}; {why}")


def parse_new_tokens(value: str) -> int | None:
    """--new-tokens: a positive integer, or 'answer' (None: as many tokens as the answer)."""
    if str(value).strip().lower() == "answer":
        return None
    if not str(value).strip().isdigit() or int(value) < 1:
        raise LetheError(f"--new-tokens must be a positive integer or 'answer', got {value!r}")
    return int(value)


def _check_extraction(pf: Preflight, model, info, data, o: dict) -> None:
    """--layers, the facts split (and the optional random facts), --base."""
    from lethe.cli import int_list

    pf.run("", int_list, o["layers"], "--layers")
    pf.run("", parse_new_tokens, o["new_tokens"])
    fields = ("subject", "prompt", "target_true")
    check_table(pf, data, config="facts", split=o["split"], text=fields, where="--data")
    base = o["base"]
    if base:
        try:  # optional: without random facts the Δ-accuracy on them is skipped
            from lethe.loading import load_table

            load_table(data, config="facts", split=o["retain_split"], columns=fields)
            pf.ok(f"--data: {data} facts/{o['retain_split']} (random facts for Δ-accuracy)")
        except LetheError as err:
            pf.ok(f"--data: no random facts for Δ-accuracy ({err}); skipped")
        _same_vocab(pf, info, check_model(pf, base, where="--base"), model=model, spec=base,
                    where="--base", why="the rewrite score compares the same tokens under "
                                        "both models")


def check_recovery(pf: Preflight, model, info, data, names: list[str], o: dict):
    """--target and its tokenizer, the plan (slices, bits, metrics), every MUSE table the
    metrics read, the size of each relearning slice. Returns the RecoveryPlan (or None)."""
    from eval.muse.registry import metrics as registered
    from unlearn.robustness import DEFAULT_METRICS, build_plan

    target = o["target"]
    if not target:
        pf.problem("relearn and quantize measure recovery toward the model before unlearning: "
                   "give it with --target MODEL")
    else:
        _same_vocab(pf, info, check_model(pf, target, where="--target"), model=model,
                    spec=target, where="--target", why="recovery compares the same texts "
                                                        "scored by both models")
    relearn = dict(texts=o["relearn_texts"], steps=o["relearn_steps"],
                   learning_rate=o["relearn_lr"], batch_size=o["relearn_batch_size"],
                   lora=o["relearn_lora"], retain_split=o["relearn_retain_split"],
                   seed=o["seed"])
    quant = dict(group_size=o["group_size"], scheme=o["quant_scheme"],
                 backend=o["quant_backend"])
    plan = pf.run("", build_plan, names, relearn_on=o["relearn_on"], relearn=relearn,
                  bits=o["bits"], quant=quant, metrics=o["metrics"] or DEFAULT_METRICS)
    if plan is None:
        return None
    for name in plan.metrics:
        for sp in registered()[name].splits:
            check_table(pf, data, config=sp.config, split=sp.split, text=sp.columns,
                        where=f"--data ({name})")
    _check_relearn(pf, plan, data, info)
    if any(q.backend == "bnb" for q in plan.quantize):
        from eval.attacks.quantize import bnb_problem

        problem = bnb_problem()
        pf.problem(f"--quant-backend bnb: {problem}") if problem else \
            pf.ok("--quant-backend bnb: bitsandbytes and a CUDA GPU found")
    return plan


def _check_relearn(pf: Preflight, plan, data, info) -> None:
    """Each slice's split exists and is large enough; LoRA's modules exist in MODEL."""
    from unlearn.relearn import slice_size

    for spec in plan.relearn:
        n_forget = check_table(pf, data, config=spec.config, split=spec.forget_split,
                               text=("text",), where=f"--data ({spec.label})")
        n_split = n_forget if spec.on == "forget" else check_table(
            pf, data, config=spec.config, split=spec.split, text=("text",),
            where=f"--data ({spec.label})")
        if n_forget is not None and n_split is not None and \
                pf.run("", slice_size, spec, n_forget, n_split) is not None:
            pf.ok(f"{spec.label}: {slice_size(spec, n_forget, n_split)} texts of "
                  f"{spec.config}/{spec.split}, {spec.steps} steps")
        if spec.lora and info is not None and info.config is not None:
            from lethe.trainer import LoraSection, lora_config

            model = skeleton(info.config, info.task)
            if model is not None:
                pf.run("--relearn-lora", lora_config, model, LoraSection())
