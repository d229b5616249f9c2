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

from lethe.recipe import load_recipe, passthrough_field
from lethe.trainer import LoraSection, training_argument_names

# The paper's fixed KL coefficient (Ziegenbein et al., 2024, §4: PPO's KL penalty to the initial
# policy). Used as `train.beta` when the recipe does not set it.
PAPER_KL_BETA = 0.001857
DEFAULT_INSTRUCTION = ("Rewrite the following argument to be more appropriate and make only "
                       "minimal changes.")


@lru_cache(maxsize=None)
def rl_config_names() -> frozenset[str]:
    """Keys a `train:` section may hold: fields of GRPOConfig or RLOOConfig (both extend
    TrainingArguments). The chosen algorithm's own class is checked again in `detox.rl`."""
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


@dataclass(frozen=True)
class PromptSection:
    """How an argument becomes the policy's prompt (the same text `detox rewrite` must use)."""

    instruction: str = DEFAULT_INSTRUCTION  # the paper's instruction (§3.2)
    template: str = "{instruction}\n\n{text}"  # the user turn; fills {instruction} and {text}
    chat: Literal["auto", "always", "never"] = "auto"  # wrap in the tokenizer's chat template
    # (auto: when it has one; TRL then treats prompts as conversations)

    def __post_init__(self):
        if "{text}" not in self.template:
            raise ValueError("prompt.template must contain {text} (where the argument goes)")


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
    max_words: int | None = None  # drop longer texts (keeps CPU runs short)
    max_train: int | None = None  # at most this many prompts (after filtering), seeded shuffle
    max_eval: int = 32  # at most this many held-out prompts
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
    eval_fraction: float = 0.05  # held out to report the response-token loss
    revision: str | None = None


@dataclass(frozen=True)
class ClassifierReward:
    """P(label | rewrite) from a sequence classifier (the paper's appropriateness reward)."""

    weight: float = 0.5  # w_app
    model: str = "runs/detox/classifier/model"  # any HF classifier: hub id or directory (e.g.
    # written by `detox train-classifier`)
    label: str = "appropriate"  # label whose probability is the reward: a name in the model's
    # id2label or an index
    batch_size: int = 16
    max_length: int = 512  # tokens per text for the classifier


@dataclass(frozen=True)
class SimilarityReward:
    """Content preservation: similarity between the rewrite and the original argument."""

    weight: float = 0.5  # w_sim
    kind: Literal["embedding", "bertscore"] = "embedding"  # embedding cosine (default) or
    # BERTScore F1 (the paper's choice; needs a BERTScore model available offline)
    model: str = "minilm"  # the embedding / BERTScore model (spec, hub id or directory)
    batch_size: int = 32


@dataclass(frozen=True)
class FluencyReward:
    """Optional fluency reward (the scorer of eval.detox.fluency)."""

    weight: float = 0.0  # 0 = off
    model: str | None = None  # the fluency model; None: the scorer's default
    batch_size: int = 16


@dataclass(frozen=True)
class LengthReward:
    """Optional length penalty: min(a, b) / max(a, b) of the word counts of rewrite and original
    (1 = same length); keeps the policy from deleting the argument or rambling."""

    weight: float = 0.0  # 0 = off


@dataclass(frozen=True)
class RewardsSection:
    """The reward: a weighted mean of its parts (weights are normalised to sum to 1)."""

    combine: Literal["arithmetic", "harmonic"] = "arithmetic"  # arithmetic: TRL's
    # reward_weights over one callable per part (each logged as rewards/<part>/mean);
    # harmonic: one callable, sum(w) / sum(w_i / r_i), parts logged as reward_parts/<part>
    appropriateness: ClassifierReward = field(default_factory=ClassifierReward)
    similarity: SimilarityReward = field(default_factory=SimilarityReward)
    fluency: FluencyReward = field(default_factory=FluencyReward)
    length: LengthReward = field(default_factory=LengthReward)

    def weights(self) -> dict[str, float]:
        return {"appropriateness": self.appropriateness.weight,
                "similarity": self.similarity.weight,
                "fluency": self.fluency.weight, "length": self.length.weight}

    def __post_init__(self):
        w = self.weights()
        if any(v < 0 for v in w.values()):
            raise ValueError("reward weights must be >= 0")
        if sum(w.values()) <= 0:
            raise ValueError("at least one reward weight must be > 0")


@dataclass(frozen=True)
class FilterSection:
    """Keep only prompts the appropriateness classifier scores as inappropriate (paper §4.1)."""

    enabled: bool = True
    threshold: float = 0.5  # keep a text when 1 - P(rewards.appropriateness.label) >= threshold


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
    prompt: PromptSection = field(default_factory=PromptSection)
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
    r = recipe.rewards
    rewards = dataclasses.replace(
        r, appropriateness=dataclasses.replace(r.appropriateness, weight=w.appropriateness),
        similarity=dataclasses.replace(r.similarity, weight=w.similarity),
        fluency=dataclasses.replace(r.fluency, weight=w.fluency),
        length=dataclasses.replace(r.length, weight=w.length))
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
class ClassifierRecipe:
    """`detox train-classifier RECIPE`."""

    output_dir: str = "runs/detox/classifier"  # gets model/, metrics.jsonl, results.json/.md
    seed: int = 0
    data: LabelledData = field(default_factory=LabelledData)
    model: ClassifierModel = field(default_factory=ClassifierModel)
    class_weights: Literal["none", "balanced"] = "none"  # balanced: inverse class frequency in
    # the cross-entropy (for skewed label distributions)
    eval_batch_size: int = 64
    guard: GuardSection = field(default_factory=GuardSection)
    train: dict = passthrough_field(training_argument_names)  # TrainingArguments, unchanged


def load_classifier_recipe(path, overrides=()) -> ClassifierRecipe:
    return load_recipe(path, ClassifierRecipe, overrides)
