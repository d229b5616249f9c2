"""The unlearning recipe: what `unlearn prepare` and `unlearn run` read.

Every field is documented once, here. A minimal recipe names a target model, the data and a
method; `world:` and `prepare:` make the offline demo self-contained (generate the benchmark
world, train the target and retrain models) and are skipped when their outputs exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lethe.recipe import load_recipe, passthrough_field, registry_field
from lethe.trainer import LoraSection, training_argument_names, training_argument_types
from unlearn.methods import MethodConfig, method_config_class, method_names
from unlearn.shakespeare import ShakespeareSection


@dataclass(frozen=True)
class WorldSection:
    """The fictional benchmark world (`unlearn world`), generated when `dir` is missing."""

    dir: str = "runs/demo/world"  # where the world lives (MUSE layout, see docs/world.md)
    seed: int = 0  # generator seed: same seed + size → byte-identical files
    size: Literal["tiny", "demo", "large"] = "demo"  # tiny = tests, demo = CPU, large = GPU
    # Also write the same world in TOFU's layout here (`unlearn world --format tofu`): QA
    # tables for `unlearn eval --benchmark tofu` and for methods trained on QA (DPO, AltPO)
    tofu_dir: str | None = None


@dataclass(frozen=True)
class ArchSection:
    """Shape of the Llama-architecture model `unlearn prepare` trains from scratch."""

    vocab_size: int = 2048  # BPE vocabulary trained on the world's forget+retain text
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class PrepareSection:
    """Training the `target` (forget+retain) and `retrain` (retain only) checkpoints."""

    out_dir: str = "runs/demo/models"  # gets target/ and retrain/
    # Fine-tune this pretrained model (spec: hub id, dir, .gguf, alias) instead of training a
    # tokenizer and a fresh Llama of shape `arch` from scratch.
    base_model: str | None = None
    # Fine-tune `base_model` through LoRA adapters instead of every weight, then merge them
    # into the weights before saving: target/ and retrain/ stay plain checkpoints that every
    # method, metric and attack reads like MUSE's targets (its `merge` field is not read:
    # prepare always merges). On this project's 2-core CPU, SmolLM2-135M trains ~1.4-1.6x
    # more tokens per CPU-second with LoRA than fully (docs/results.md,
    # tests/bench/bench_lora_vs_full.py). Needs base_model.
    lora: LoraSection | None = None
    arch: ArchSection = field(default_factory=ArchSection)
    max_length: int = 256  # tokens per training chunk
    retain_splits: tuple[str, ...] = ("retain1", "retain2")  # raw splits both models see
    # A raw split the retrain model trains on in the forget split's place (the world's
    # `stand_in`: other entities, generated like the forget group), so both models see as
    # much text and as many question sheets for as many steps. Without it the demo's retrain
    # model had fewer question-format examples than the target and learned in-context recall
    # in some seeds only (KnowMem_r 27.0 / 30.3 / 4.0 over seeds 0-2; docs/results.md).
    # Side by side it costs no wall time: the target's training is the longer one anyway.
    retrain_stand_in: str | None = None
    # Train target and retrain at the same time, one process each with half the CPU cores.
    # auto: on a CPU-only machine with >= 2 cores, one process, no DeepSpeed (demo, 2 cores:
    # 1.2x the throughput of one 2-thread process when idle, and far steadier under load:
    # tiny models' OpenMP threads spin against any other process). always | never force it.
    parallel: Literal["auto", "always", "never"] = "auto"
    # Pack each batch's documents into max_length-token rows (each document attends only to
    # itself) instead of padding them to the longest: the same loss for ~1.8x less compute on
    # the demo world. Checked on the first batch against the padded loss; turn it off for a
    # model whose attention ignores position_ids-delimited sequences.
    pack: bool = True
    # Train the retrain model for as many optimizer steps as the target (more passes over its
    # smaller set) instead of as many epochs. Off by default: equal epochs give both models
    # the same exposure to the retain text, as MUSE's setup does, and on the demo world more
    # retrain steps lowered its KnowMem_r (seed 0, 40 epochs: 25.9 with 480 steps, 14.0 with
    # the target's 600) although its loss fell (0.43 -> 0.10). Side by side it costs no wall
    # time (the retrain model would otherwise finish first).
    match_steps: bool = False
    train: dict = passthrough_field(training_argument_names, training_argument_types)  # TrainingArguments, unchanged


@dataclass(frozen=True)
class SplitRef:
    """One split of a MUSE-layout dataset."""

    config: str = "raw"  # MUSE config (raw, privleak, scal, sust, ...) or TOFU's (forget10, ...)
    split: str = "forget"
    field: str = "text"  # text column (with prompt_field: the answer column)
    # Question column of QA data (TOFU layout, e.g. `question`): each example is the question
    # as a prompt plus `field` as the answer, trained on the answer only (open-unlearning's
    # TOFU training). None: `field` is plain text, trained on every token.
    prompt_field: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns an example is built from."""
        return (self.field,) if self.prompt_field is None else (self.prompt_field, self.field)


@dataclass(frozen=True)
class DataSection:
    """The text to unlearn and to keep."""

    source: str = "runs/demo/world"  # world directory or hub dataset id with MUSE's layout
    forget: SplitRef = field(default_factory=SplitRef)
    retain: SplitRef | None = field(default_factory=lambda: SplitRef("raw", "retain1"))
    max_length: int = 256  # tokens per example; longer texts are cut into chunks
    revision: str | None = None  # hub dataset revision
    # How QA examples (prompt_field set) are written: plain = "Question: {q}\nAnswer: {a}" (the
    # offline world's format), chat = the tokenizer's chat template (instruction-tuned models).
    qa_template: Literal["plain", "chat"] = "plain"


@dataclass(frozen=True)
class ModelSection:
    """The model to unlearn and the oracle it is measured against."""

    target: str | None = None  # hub id, directory, .gguf or alias; default: prepare's target
    retrain: str | None = None  # the retrain oracle (for PrivLeak's AUC and the report)
    retrain_auc: float | str | None = None  # instead of `retrain`: a number or muse-news/books
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    revision: str | None = None
    trust_remote_code: bool = False  # run model code from the hub: off unless you trust it


@dataclass(frozen=True)
class RequestsSection:
    """Several forget requests (MUSE C5 scalability / C6 sustainability)."""

    mode: Literal["sequential", "independent"] = "sequential"
    # sequential: each request unlearns on top of the previous result (sustainability);
    # independent: each starts from the target (scalability over growing forget sets).
    forget: tuple[SplitRef, ...] = ()  # empty: one request, `data.forget`


@dataclass(frozen=True)
class GuardSection:
    """The divergence guard: NaN/inf always stops; this adds a bound on |loss|."""

    max_abs_loss: float | None = None


@dataclass(frozen=True)
class EvalSection:
    """The six-way evaluation run after unlearning (see docs/metrics.md)."""

    enabled: bool = True
    metrics: tuple[str, ...] = ("verbmem", "knowmem_f", "knowmem_r", "privleak")
    batch_size: int = 32
    data: str | None = None  # evaluation data; default `data.source`
    include_target: bool = True  # also evaluate the starting model (a row in the table)


@dataclass(frozen=True)
class SaveSection:
    """What `unlearn run` keeps."""

    model: bool = True  # write the unlearned checkpoint (HF format + model card)
    merge_lora: bool = False  # with LoRA: also write the merged full model


@dataclass(frozen=True)
class UnlearnRecipe:
    method: MethodConfig = registry_field(method_config_class, method_names)  # name + params
    name: str = "unlearn"  # run name (model card, report titles)
    output_dir: str = "runs/unlearn"  # checkpoints, results.json/md/png, metrics.jsonl
    seed: int = 0
    world: WorldSection | None = None
    shakespeare: ShakespeareSection | None = None  # the offline real-text case instead
    prepare: PrepareSection | None = None
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    requests: RequestsSection = field(default_factory=RequestsSection)
    lora: LoraSection | None = None  # LoRA adapters instead of full fine-tuning
    train: dict = passthrough_field(training_argument_names, training_argument_types)  # TrainingArguments, unchanged
    guard: GuardSection = field(default_factory=GuardSection)
    eval: EvalSection = field(default_factory=EvalSection)
    save: SaveSection = field(default_factory=SaveSection)
    # Several methods/settings on the same data, reported in one table: each entry maps a
    # label to recipe fields that replace this recipe's (e.g. `ga: {method: {name: ga}}`);
    # each variant runs into output_dir/<label>/, then one evaluation covers all of them.
    variants: dict[str, dict] = field(default_factory=dict)

    def target_spec(self) -> str:
        if self.model.target:
            return self.model.target
        if self.prepare is not None:
            return str(Path(self.prepare.out_dir) / "target")
        return ""

    def retrain_spec(self) -> str | None:
        if self.model.retrain:
            return self.model.retrain
        if self.prepare is not None and self.model.retrain_auc is None:
            return str(Path(self.prepare.out_dir) / "retrain")
        return None


def load_unlearn_recipe(path, overrides=()) -> UnlearnRecipe:
    recipe = load_recipe(path, UnlearnRecipe, overrides)
    expand_variants(recipe, str(path))  # validate every variant now, not halfway through
    return recipe


def expand_variants(recipe: UnlearnRecipe, source: str = "<recipe>") -> list[tuple[str,
                                                                                    UnlearnRecipe]]:
    """[(label, full recipe)] for each variant, writing into output_dir/<label>."""
    from dataclasses import replace

    from lethe.recipe import build, deep_merge, to_dict

    base = to_dict(replace(recipe, variants={}))
    out = []
    for label, changes in recipe.variants.items():
        merged = deep_merge(base, {**dict(changes or {}),
                                   "output_dir": str(Path(recipe.output_dir) / label)})
        out.append((label, build(UnlearnRecipe, merged, source, where=f"variants.{label}")))
    return out
