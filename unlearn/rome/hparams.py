"""EditConfig: every knob of a ROME-style edit with a deletion objective, in one frozen record.

ROME: Meng et al. (2022), "Locating and Editing Factual Associations in GPT", Sec. 3.
Deletion objectives and defenses: Patil, Hase & Bansal (2024), "Can Sensitive Information Be
Deleted From LLMs?", Sec. 5. docs/editing.md explains each step and its equation.

Loadable from a recipe with `lethe.recipe.build(EditConfig, mapping)`; bad values raise an
error that is both a `LetheError` (one line for users) and a `ValueError` (so the recipe loader
prefixes the file and key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lethe.errors import LetheError


class EditConfigError(LetheError, ValueError):
    """A bad EditConfig value."""


@dataclass(frozen=True)
class EditConfig:
    # --- where to edit ----------------------------------------------------------------------
    layer: int | None = None
    """Block whose MLP down-projection is rewritten. None = the published ROME hyperparameters
    of the architecture (model_layout.default_layer: GPT-2 XL 17 of 48, GPT-J 5 of 28,
    Llama-2-7B 5 of 32, ...; other depths of those families at the same relative depth;
    other architectures n_layers // 5)."""
    rewrite_module: str | None = None
    """Module-name template of the down-projection with `{}` for the layer, e.g.
    'model.layers.{}.mlp.down_proj'. None = from model.config.model_type (model_layout.py)."""
    blocks_module: str | None = None
    """Name of the ModuleList of blocks (for the logit lens of the defenses). None = auto."""
    final_norm_module: str | None = None
    """Name of the final norm before the unembedding (logit lens). None = auto."""

    # --- the objective (objectives.py) --------------------------------------------------------
    objective: str = "fact_erasure"
    """error_injection | fact_erasure | empty_response | head_projection | max_entropy |
    input_rephrasing. The three defenses add their term to fact erasure (Patil et al. Sec. 5)."""
    dummy_target: str = "dummy"
    """empty_response: the answer the edited model should give instead."""
    erasure_weight: float = 0.0
    """head_projection / max_entropy: weight of the fact-erasure term p̄. 0 = the paper's code
    (Vaidehi99/InfoDeletionAttacks rome/compute_v.py: a defense replaces it); 1 keeps the
    final-layer answer suppressed too."""
    defense_weight: float = 1.0
    """head_projection / max_entropy: weight of the defense term."""
    defense_layers: tuple[int, ...] | None = None
    """head_projection / max_entropy: logit-lens layers to defend, numbered as `layer_index`
    says. None = every block after the edit layer (blocks up to the edit layer cannot change
    at the last prompt token)."""
    layer_index: Literal["hidden_states", "block"] = "hidden_states"
    """How defense_layers are numbered: "hidden_states" = an index into the model's
    output_hidden_states (0 = embeddings, l = output of block l − 1), as the paper's
    --margin_layers / --entropy_layers lists; "block" = the output of block l (0-based)."""
    defense_k: int = 4
    """head_projection: push the answer out of the top-k and bottom-k of each defended layer."""
    defense_margin: float = 0.0
    """head_projection: margin m of the hinge: relu(z_a − z_(k) + m) + relu(z_(−k) − z_a + m)
    (the paper's code: 0)."""
    margin_on: Literal["logit", "prob"] = "prob"
    """head_projection: the hinge on lens probabilities (the paper's code) or lens logits."""
    margin_rank: Literal["all", "others"] = "all"
    """head_projection: z_(k) / z_(−k) is the k-th largest / smallest score of the whole sorted
    vocabulary, the answer included ("all", the paper's code: an answer ranked exactly k-th
    costs nothing, so it may stay in the top-k), or of the other tokens ("others": the hinge is
    0 exactly when the answer is outside both k-sets, the attack's candidate sets)."""
    rephrase_count: int = 1
    """input_rephrasing: how many of the fact's paraphrases (the first ones) join the rewriting
    prompts; the rephrase attack uses the last ones, so keep them apart."""

    # --- v* optimisation (values.py) ----------------------------------------------------------
    v_steps: int = 20
    """Adam steps on the delta added to the down-projection output (ROME: 20)."""
    v_lr: float = 0.5
    """Adam learning rate (ROME: 0.5)."""
    kl_factor: float = 0.0625
    """Weight of KL(P_edited || P_orig) on the KL prompts at their last token (ROME Eq. 4)."""
    kl_prompts: tuple[str, ...] = ("{} is a",)
    """Essence-drift prompts, `{}` = subject (ROME)."""
    kl_position: Literal["subject", "last"] = "subject"
    """Where the KL prompts' distributions are compared: at the subject's last token (ROME's
    code, kmeng01/rome rome/compute_v.py `lookup_idxs`) or at the prompt's last token (ROME
    Eq. 4's P[x | p'], the next-token distribution after "{subject} is a")."""
    weight_decay: float = 0.5
    """λ_wd: weight of ||δ||^p / ||v_orig||² (ROME: 0.5)."""
    weight_decay_power: Literal[1, 2] = 1
    """p: 1 = ||δ|| / ||v_orig||², ROME's code (kmeng01/rome rome/compute_v.py); 2 =
    ||δ||² / ||v_orig||², a scale-free squared L2 (Lethe before issue #14)."""
    clamp_norm_factor: float = 4.0
    """After each step, ||δ|| is clamped to clamp_norm_factor · ||v_orig|| (ROME: 4)."""
    v_stop_loss: float = 0.05
    """Target-NLL objectives stop early once the loss `stop_on` names is below this (ROME:
    5e-2). Deletion objectives never stop early (as in the paper's code)."""
    stop_on: Literal["total", "objective"] = "total"
    """Early stop on the total loss (objective + KL + decay; ROME's code) or on the objective
    term alone."""
    update_key: Literal["mean", "prompt"] = "prompt"
    """Which key the rank-one update is exact for (update.py). "prompt": the key of the bare
    prompt (ROME's released code divides by it, so the unprefixed prompt gets exactly v*).
    "mean": k*, the mean over the context templates (ROME paper, Eq. 2: W'k* = v*)."""

    # --- context templates (contexts.py) ------------------------------------------------------
    context_templates: tuple[str, ...] = ("{}",)
    """Fixed templates the prompt is put into (`{}` = the prompt)."""
    context_lengths: tuple[tuple[int, int], ...] = ((5, 10), (10, 10))
    """(tokens, count) pairs: sample `count` prefixes of `tokens` tokens from the model and add
    'prefix. {}' templates (ROME averages k* and fits v* over them). () = fixed ones only."""
    seed: int = 0
    """Seed of the context-prefix sampling."""
    rewrite_contexts: int | None = None
    """v* is fitted on the prompt in the first N context templates only (k* still averages
    over all of them). None = all (ROME); Patil et al.'s code uses 10."""

    # --- covariance C = E[k kᵀ] (covariance.py) ------------------------------------------------
    use_covariance: bool = True
    """False = C = I (the update's left vector is then k* itself; no corpus needed)."""
    cov_dataset: str | None = None
    """Corpus for C when edit_model gets none: a local file/dir or hub id (lethe.loading)."""
    cov_config: str | None = None
    """Dataset config (e.g. 'raw' of a Lethe world)."""
    cov_split: str = "train"
    """Dataset split (e.g. 'retain1' of a Lethe world)."""
    cov_column: str = "text"
    """Text column."""
    cov_samples: int = 1000
    """Number of corpus texts whose tokens feed C (ROME uses 100,000 Wikipedia texts)."""
    cov_max_length: int = 256
    """Texts are truncated to this many tokens."""
    cov_batch_size: int = 8
    cov_dtype: Literal["float32", "float64"] = "float32"
    """Accumulation and storage dtype of C."""
    cov_ridge: float = 0.0
    """Solve with C + ridge · mean(diag C) · I (use a small value if C is singular)."""

    def __post_init__(self):
        from unlearn.rome.objectives import OBJECTIVES, unknown_objective

        if self.objective not in OBJECTIVES:
            raise EditConfigError(unknown_objective(self.objective))
        checks = [
            (self.v_steps >= 1, f"v_steps must be >= 1 (got {self.v_steps})"),
            (self.v_lr > 0, f"v_lr must be > 0 (got {self.v_lr})"),
            (self.kl_factor >= 0, f"kl_factor must be >= 0 (got {self.kl_factor})"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0 (got {self.weight_decay})"),
            (self.clamp_norm_factor > 0,
             f"clamp_norm_factor must be > 0 (got {self.clamp_norm_factor})"),
            (self.defense_k >= 1, f"defense_k must be >= 1 (got {self.defense_k})"),
            (self.rephrase_count >= 1, f"rephrase_count must be >= 1 (got {self.rephrase_count})"),
            (self.cov_samples >= 1, f"cov_samples must be >= 1 (got {self.cov_samples})"),
            (self.rewrite_contexts is None or self.rewrite_contexts >= 1,
             f"rewrite_contexts must be >= 1 or null (got {self.rewrite_contexts})"),
            (self.cov_max_length >= 2, f"cov_max_length must be >= 2 (got {self.cov_max_length})"),
            (self.cov_batch_size >= 1, f"cov_batch_size must be >= 1 (got {self.cov_batch_size})"),
            (self.cov_ridge >= 0, f"cov_ridge must be >= 0 (got {self.cov_ridge})"),
            (self.cov_dtype in ("float32", "float64"),
             f"cov_dtype must be float32 or float64 (got {self.cov_dtype!r})"),
            (self.update_key in ("mean", "prompt"),
             f"update_key must be 'mean' or 'prompt' (got {self.update_key!r})"),
            (self.margin_on in ("logit", "prob"),
             f"margin_on must be 'logit' or 'prob' (got {self.margin_on!r})"),
            (self.margin_rank in ("all", "others"),
             f"margin_rank must be 'all' or 'others' (got {self.margin_rank!r})"),
            (self.layer_index in ("hidden_states", "block"),
             f"layer_index must be 'hidden_states' or 'block' (got {self.layer_index!r})"),
            (self.kl_position in ("subject", "last"),
             f"kl_position must be 'subject' or 'last' (got {self.kl_position!r})"),
            (self.weight_decay_power in (1, 2),
             f"weight_decay_power must be 1 or 2 (got {self.weight_decay_power!r})"),
            (self.stop_on in ("total", "objective"),
             f"stop_on must be 'total' or 'objective' (got {self.stop_on!r})"),
            (bool(self.context_templates) or bool(self.context_lengths),
             "context_templates and context_lengths are both empty; keep at least '{}'"),
        ]
        for ok, message in checks:
            if not ok:
                raise EditConfigError(f"EditConfig: {message}")
        for t in (*self.context_templates, *self.kl_prompts):
            if t.count("{}") != 1:
                raise EditConfigError(f"EditConfig: template {t!r} needs exactly one '{{}}'")
        for length, count in self.context_lengths:
            if length < 1 or count < 0:
                raise EditConfigError(f"EditConfig: context_lengths entry ({length}, {count}) "
                                      f"needs tokens >= 1 and count >= 0")
        if self.rewrite_module is not None and self.rewrite_module.count("{}") != 1:
            raise EditConfigError(f"EditConfig: rewrite_module {self.rewrite_module!r} needs one "
                                  f"'{{}}' for the layer, e.g. 'model.layers.{{}}.mlp.down_proj'")
