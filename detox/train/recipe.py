"""Recipes of `detox train` (RL from machine feedback, or SFT on parallel pairs) and
`detox train-classifier` (the appropriateness/toxicity classifier the RL reward uses).

Every field is documented once, here. The RL recipe follows Ziegenbein et al. (ACL 2024,
"LLM-based Rewriting of Inappropriate Argumentation using Reinforcement Learning from Machine
Feedback"): an instruction-tuned policy is prompted to rewrite an argument, and is optimised for
reward = w_app * P(appropriate | rewrite) + w_sim * similarity(rewrite, original) under a small
KL penalty (beta = 0.001857) to the initial policy, with LoRA r = 8. TRL's GRPO replaces the
paper's PPO (TRL 1.16 has no PPO that takes Python reward functions).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from detox.rewrite.recipe import PromptConfig
from eval.detox.registry import scorer_field
from lethe.recipe import load_recipe, passthrough_field
from lethe.trainer import LoraSection, training_argument_names

# The paper's fixed KL coefficient (Ziegenbein et al., 2024: PPO's KL penalty to the initial
# policy). Used as `train.beta` when the recipe does not set it.
PAPER_KL_BETA = 0.001857
PAPER_INSTRUCTION = ("Rewrite the following argument to be more appropriate and make only "
                     "minimal changes.")


@lru_cache(maxsize=None)
def rl_config_names() -> frozenset[str]:
    """Keys a `train:` section may hold: fields of GRPOConfig or RLOOConfig (both extend
    TrainingArguments). The chosen algorithm's own class is checked again in `detox.train.rl`."""
    from trl import GRPOConfig, RLOOConfig

    return frozenset(f.name for cls in (GRPOConfig, RLOOConfig) for f in dataclasses.fields(cls)
                     if f.init)


def train_keys() -> set[str]:
    return set(rl_config_names()) | training_argument_names()


# ---------------------------------------------------------------------------------------------
# detox train


@dataclass(frozen=True)
class PolicySection:
    """The model being trained: an instruction-tuned causal LM."""

    name: str = "smollm2"  # hub id | checkpoint dir | .gguf | alias | adapter dir (e.g. an SFT
    # warm start: its adapter is merged into the base before new LoRA adapters are added)
    dtype: str = "float32"  # auto | float32 | bfloat16 | float16
    revision: str | None = None  # hub revision
    trust_remote_code: bool = False  # run model code from the hub: off unless you trust it


def paper_prompt():
    """`detox rewrite`'s prompt config (detox.rewrite.recipe.PromptConfig) with the paper's
    instruction: chat format = the instruction as the system turn, the argument as the user
    turn. The same section under `rewriter.prompt` makes `detox rewrite` prompt the trained
    policy exactly as training did (and keep the first line of its output, as the rewards saw
    it)."""
    from detox.rewrite.recipe import PromptConfig

    return PromptConfig(instruction_text=PAPER_INSTRUCTION)


@dataclass(frozen=True)
class TextData:
    """A table of texts to rewrite (RL prompts) and the held-out rows to evaluate on."""

    source: str = "../shared/data/appropriateness_corpus_conservative_w_folds.csv"  # file, dir
    # or hub id (see lethe.loading.load_table); the default is the appropriateness corpus
    # (Ziegenbein et al., 2023) kept beside the project, never inside it
    config: str | None = None  # dataset config (hub datasets / config directories)
    split: str | None = None  # dataset split (hub datasets / directories); None: the file
    text_field: str = "post_text"  # column with the text to rewrite
    fold_field: str | None = "fold0.0"  # column assigning rows to folds; None: every row trains
    train_fold: str = "TRAIN"  # fold value of the RL prompts
    eval_fold: str | None = "VALID"  # fold value of held-out prompts for the evaluation
    eval_split: str | None = None  # without fold_field: the dataset split of the held-out
    # prompts (e.g. validation of a hub dataset whose splits are the folds)
    max_words: int | None = None  # drop longer texts (keeps CPU runs short)
    max_train: int | None = None  # at most this many prompts (after filtering), seeded shuffle
    max_eval: int = 32  # at most this many held-out prompts
    seed: int | None = None  # seed of the prompt shuffles (training and held-out); None: the
    # recipe's seed. Fix it to compare training seeds on the same prompts and evaluation set
    revision: str | None = None  # hub dataset revision


@dataclass(frozen=True)
class PairData:
    """Parallel pairs for supervised rewriting (e.g. ParaDetox: toxic -> neutral1)."""

    source: str = "../shared/data/paradetox_dev.tsv"  # file, dir or hub id
    config: str | None = None
    split: str | None = None
    input_field: str = "toxic"  # the offensive text (goes into the prompt)
    target_field: str = "neutral1"  # its human rewrite (the response; rows with it empty are
    # dropped)
    max_length: int = 256  # tokens of prompt + response; longer pairs are dropped
    max_train: int | None = None  # at most this many pairs (seeded shuffle)
    skip: int = 0  # leave out the first `skip` training pairs of the shuffle: a second run
    # from the first one's adapter (model.name) continues on pairs it has not seen
    eval_fraction: float = 0.05  # held out to report the response-token loss
    revision: str | None = None


@dataclass(frozen=True)
class RewardWeights:
    """w of each reward part; normalised to sum to 1, a 0 turns the part off."""

    appropriateness: float = 0.5  # w_app: P(appropriate | rewrite) (1 - the STA scorer's
    # P(toxic label))
    similarity: float = 0.5  # w_sim: similarity of the rewrite to the original argument
    fluency: float = 0.0  # fluency of the rewrite (eval.detox.fluency)
    length: float = 0.0  # length penalty: min(a, b) / max(a, b) of the word counts of the
    # rewrite and the original (1 = same length), against deleting the argument or rambling

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def __post_init__(self):
        w = self.as_dict()
        if any(v < 0 for v in w.values()):
            raise ValueError("reward weights must be >= 0")
        if sum(w.values()) <= 0:
            raise ValueError("at least one reward weight must be > 0")


@dataclass(frozen=True)
class RewardsSection:
    """The reward: a weighted mean of parts, each part an eval.detox scorer (so the policy is
    trained on exactly what `detox eval` reports)."""

    combine: Literal["arithmetic", "harmonic"] = "arithmetic"  # arithmetic: TRL's
    # reward_weights over one callable per part (each logged as rewards/<part>/mean);
    # harmonic: one callable, sum(w) / sum(w_i / r_i), parts logged as reward_parts/<part>
    weights: RewardWeights = field(default_factory=RewardWeights)
    appropriateness: object = scorer_field(  # an STA scorer: reward = its score = 1 - P(toxic)
        "sta", "classifier", model="runs/detox/classifier/model", toxic_label="inappropriate")
    similarity: object = scorer_field("sim", "embedding")  # embedding cosine (default) or
    # bertscore (name: bertscore, model: <encoder>)
    fluency: object = scorer_field("fl", "perplexity")  # loaded only when weights.fluency > 0

    def weights_dict(self) -> dict[str, float]:
        return self.weights.as_dict()


@dataclass(frozen=True)
class FilterSection:
    """Keep only arguments the appropriateness classifier scores as inappropriate (as the paper
    does)."""

    enabled: bool = True
    threshold: float = 0.5  # keep a text when its P(inappropriate) = 1 - the appropriateness
    # scorer's score (rewards.appropriateness) is at least this


@dataclass(frozen=True)
class Weighting:
    """One point of a weighting sweep: the reward weights of one policy."""

    appropriateness: float
    similarity: float
    fluency: float = 0.0
    length: float = 0.0

    def tag(self) -> str:
        parts = [f"app{self.appropriateness:.2f}", f"sim{self.similarity:.2f}"]
        parts += [f"{k}{v:.2f}" for k, v in (("flu", self.fluency), ("len", self.length)) if v]
        return "-".join(parts)


@dataclass(frozen=True)
class SweepSection:
    """Train one policy per weighting and write one trade-off table and plot."""

    weightings: tuple[Weighting, ...] = ()  # empty: a single run with rewards' own weights


@dataclass(frozen=True)
class EvalSection:
    """After training: greedy rewrites of held-out prompts, scored by the reward parts."""

    enabled: bool = True
    max_new_tokens: int = 64
    batch_size: int = 8
    initial: bool = True  # also score the initial policy (adapters disabled) for comparison


@dataclass(frozen=True)
class GuardSection:
    """Divergence guard: NaN/inf loss always stops; this adds a bound on |loss|."""

    max_abs_loss: float | None = None


@dataclass(frozen=True)
class DetoxTrainRecipe:
    """`detox train RECIPE`."""

    output_dir: str = "runs/detox/rl"  # gets model/ (adapter or checkpoint), metrics.jsonl,
    # results.json/.md/.png, recipe.yaml; a sweep gets one subdirectory per weighting
    algorithm: Literal["grpo", "rloo", "sft"] = "grpo"  # TRL GRPOTrainer (default) or
    # RLOOTrainer; sft = supervised rewriting on `pairs` through the shared trainer
    seed: int = 0
    model: PolicySection = field(default_factory=PolicySection)
    prompt: PromptConfig = field(default_factory=paper_prompt)  # detox rewrite's prompt
    # section (format auto|chat|plain|raw, instruction_text, first_line, ...)
    data: TextData = field(default_factory=TextData)  # RL prompts (grpo / rloo)
    pairs: PairData = field(default_factory=PairData)  # parallel pairs (sft)
    rewards: RewardsSection = field(default_factory=RewardsSection)
    filter: FilterSection = field(default_factory=FilterSection)
    sweep: SweepSection = field(default_factory=SweepSection)
    evaluate: EvalSection = field(default_factory=EvalSection)
    lora: LoraSection | None = field(default_factory=LoraSection)  # null = full fine-tuning
    guard: GuardSection = field(default_factory=GuardSection)
    train: dict = passthrough_field(train_keys)  # GRPOConfig / RLOOConfig / TrainingArguments
    # fields, unchanged (for grpo/rloo `beta` defaults to the paper's 0.001857)


def load_train_recipe(path, overrides=()) -> DetoxTrainRecipe:
    return load_recipe(path, DetoxTrainRecipe, overrides)


def with_weights(recipe: DetoxTrainRecipe, w: Weighting, output_dir: str) -> DetoxTrainRecipe:
    """The recipe of one sweep point: its weights, its own output directory, no sweep."""
    weights = RewardWeights(appropriateness=w.appropriateness, similarity=w.similarity,
                            fluency=w.fluency, length=w.length)
    rewards = dataclasses.replace(recipe.rewards, weights=weights)
    return dataclasses.replace(recipe, rewards=rewards, output_dir=output_dir,
                               sweep=SweepSection())


# ---------------------------------------------------------------------------------------------
# detox train-classifier


@dataclass(frozen=True)
class LabelledData:
    """A labelled table with fixed folds (default: the appropriateness corpus, fold 0)."""

    source: str = "../shared/data/appropriateness_corpus_conservative_w_folds.csv"
    config: str | None = None
    text_field: str = "post_text"
    label_field: str = "Inappropriateness"  # integer class ids 0..num_labels-1
    fold_field: str | None = "fold0.0"  # None: use the dataset splits named below instead
    train: str = "TRAIN"  # fold value (or split name) to train on
    valid: str | None = "VALID"  # fold value (or split name) reported after training
    test: str = "TEST"  # fold value (or split name) whose macro-F1 is the headline number
    max_train: int | None = None  # subsample the training fold (seeded), e.g. for smoke runs
    revision: str | None = None


@dataclass(frozen=True)
class ClassifierModel:
    """The encoder to fine-tune; a new classification head is put on top."""

    name: str = "minilm"  # hub id | dir | alias (minilm = all-MiniLM-L6-v2, bundled)
    labels: tuple[str, ...] = ("appropriate", "inappropriate")  # names of class ids 0, 1, ...
    # (stored as id2label so the RL reward can ask for P("appropriate"))
    max_length: int = 128  # tokens per text (longer texts are truncated)
    dtype: str = "float32"
    revision: str | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class HeadSection:
    """kind: embedding_head - a logistic regression on the frozen embedder's vectors."""

    c_grid: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)  # inverse L2 strengths tried; the
    # one with the best valid macro-F1 is kept (scikit-learn LogisticRegression's C)
    max_iter: int = 2000  # lbfgs iterations
    batch_size: int = 64  # texts per embedder call


@dataclass(frozen=True)
class ClassifierRecipe:
    """`detox train-classifier RECIPE`."""

    output_dir: str = "runs/detox/classifier"  # gets model/, metrics.jsonl, results.json/.md
    seed: int = 0
    # finetune: the encoder + a new head, trained end to end through the shared trainer;
    # embedding_head: the encoder frozen (a sentence embedder: minilm, hashing:DIM), a
    # logistic-regression head on its normalised vectors (eval/detox/head.py): seconds to
    # train once the texts are embedded, a few KB to ship
    kind: Literal["finetune", "embedding_head"] = "finetune"
    data: LabelledData = field(default_factory=LabelledData)
    # instead of `data`: parallel pairs (e.g. ParaDetox) - the inputs are class 1 (labels[1],
    # e.g. toxic), their rewrites class 0; pairs.eval_fraction of the inputs (with their
    # rewrites) is the valid fold; the held-out slice (detox/heldout.py) never enters
    pairs: PairData | None = None
    head: HeadSection = field(default_factory=HeadSection)
    model: ClassifierModel = field(default_factory=ClassifierModel)
    class_weights: Literal["none", "balanced"] = "none"  # balanced: inverse class frequency in
    # the cross-entropy (for skewed label distributions)
    eval_batch_size: int = 64
    guard: GuardSection = field(default_factory=GuardSection)
    train: dict = passthrough_field(training_argument_names)  # TrainingArguments, unchanged


def load_classifier_recipe(path, overrides=()) -> ClassifierRecipe:
    return load_recipe(path, ClassifierRecipe, overrides)
