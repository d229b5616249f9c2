"""Apply ROME-style edits to many facts, and undo them exactly.

Facts are edited *sequentially*, one rank-one update per fact at the same layer (as ROME
chains requests): fact i's k*, v* and KL reference are computed on the model after edits
1..i−1, so later edits respect earlier ones. The covariance C is computed (or read from the
cache) once, before any edit, so it describes the unedited model, as in MEMIT.

    record = edit_model(model, tok, facts, EditConfig(objective="head_projection"), corpus)
    ...                        # evaluate / attack the edited model
    restore(model, record)     # bit-identical original weights
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from tqdm.auto import tqdm

from lethe.lens import hidden_state_points
from lethe.lm import encode_pair, leading_space_tokens, model_device, pad_id
from lethe.errors import LetheError
from unlearn.rome.contexts import context_templates
from unlearn.rome.covariance import get_covariance
from unlearn.rome.hparams import EditConfig
from unlearn.rome.keys import compute_key
from unlearn.rome.model_layout import default_layer, resolve_layout, rewrite_target
from unlearn.rome.objectives import get_objective
from unlearn.rome.prompts import check_fact, compose, fact_label, make_row
from unlearn.rome.update import apply_delta, covariance_factor, left_vector, rank_one_delta
from unlearn.rome.values import optimise_value

log = logging.getLogger(__name__)


@dataclass
class FactEdit:
    case_id: object
    subject: str
    answer: str  # the answer string the objective optimised (false / true / dummy)
    k_star: torch.Tensor  # (d_ff,) float32, CPU: the mean key (left vector u = C⁻¹ k_star)
    k_update: torch.Tensor  # (d_ff,) the key the update is exact for (cfg.update_key)
    v_star: torch.Tensor  # (d_model,) float32, CPU: what the module now returns for k_update
    v_orig_norm: float
    delta_norm: float
    losses: list[float]
    logs: dict
    seconds: float


@dataclass
class EditRecord:
    config: EditConfig
    layer: int
    module: str  # the rewritten module's name
    originals: dict[str, torch.Tensor]  # parameter name -> original tensor (CPU copy)
    edits: list[FactEdit] = field(default_factory=list)
    covariance: dict | None = None  # cache file, hit or not, tokens
    contexts: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-able account of the edit (no tensors)."""
        return {
            "config": asdict(self.config), "layer": self.layer, "module": self.module,
            "covariance": self.covariance, "contexts": self.contexts,
            "edits": [{"case_id": e.case_id, "subject": e.subject, "answer": e.answer,
                       "v_orig_norm": e.v_orig_norm, "delta_norm": e.delta_norm,
                       "loss_first": e.losses[0] if e.losses else None,
                       "loss_last": e.losses[-1] if e.losses else None,
                       "steps": len(e.losses), "logs": e.logs, "seconds": e.seconds}
                      for e in self.edits],
        }


def _paraphrase_templates(fact: dict, count: int) -> list[str]:
    paraphrases = list(fact.get("paraphrases") or [])
    if len(paraphrases) < count:
        raise LetheError(f"{fact_label(fact)} has {len(paraphrases)} paraphrases; the "
                         f"input_rephrasing objective uses rephrase_count={count}")
    return paraphrases[:count]


@dataclass(frozen=True)
class EditPlan:
    """Everything checked before the first forward pass."""

    objective: object
    layout: object
    layer: int
    name: str  # the rewritten module
    module: torch.nn.Module
    orientation: str  # "out_in" (nn.Linear) | "in_out" (Conv1D)
    defense_layers: tuple[int, ...]  # hidden-state indices the defenses read (lethe.lens)
    answers: list[str]


def plan_edit(model, tok, facts: list[dict], cfg: EditConfig) -> EditPlan:
    """Check the facts, the layer and every prompt before any forward pass (also MEMIT's
    last layer)."""
    if not facts:
        raise LetheError("no facts to edit")
    for fact in facts:
        check_fact(fact)
    objective = get_objective(cfg.objective)
    layout = resolve_layout(model, cfg.rewrite_module, cfg.blocks_module, cfg.final_norm_module)
    layer = cfg.layer
    if layer is None:  # the published hyperparameters of this architecture (model_layout.py)
        layer, where = default_layer(getattr(model.config, "model_type", None), layout.n_layers)
        log.info("edit layer %d of %d (%s)", layer, layout.n_layers, where)
    name, module, orientation = rewrite_target(model, layout, layer)
    defense_layers: tuple[int, ...] = ()  # hidden-state indices (lethe.lens)
    if objective.uses_lens:
        if cfg.defense_layers is not None:
            defense_layers = hidden_state_points(cfg.defense_layers, layout.n_layers,
                                                 cfg.layer_index, "defense layer")
        else:  # the output of every block after the edit layer
            defense_layers = tuple(range(layer + 2, layout.n_layers + 1))
        if not defense_layers:
            raise LetheError(f"{cfg.objective}: no layer after the edit layer {layer} to defend; "
                             f"set EditConfig.defense_layers or edit a lower layer")
    answers = [objective.answer(f, cfg, facts) for f in facts]
    last_block = layer == layout.n_layers - 1
    for fact, answer in zip(facts, answers):  # every prompt must locate its subject
        label = fact_label(fact)
        # the bare prompt has the suffix of every sampled "prefix. {}" context; fixed contexts
        # may add their own text after it
        templates = [(compose(c, fact["prompt"]), label)
                     for c in dict.fromkeys(("{}", *cfg.context_templates))]
        if objective.uses_paraphrases:
            templates += [(p, f"{label} paraphrase")
                          for p in _paraphrase_templates(fact, cfg.rephrase_count)]
        for template, where in templates:
            row = make_row(tok, template, fact["subject"], where)
            # at the last block the subject's last token must predict the answer's first
            # content token itself: no other token after the subject, not even a lone space
            if last_block and (row.subject_index != len(row.ids) - 1 or leading_space_tokens(
                    tok, encode_pair(tok, row.text, answer)[1])):
                _last_block_error(layer, layout.n_layers, where, row.text)
    return EditPlan(objective, layout, layer, name, module, orientation, defense_layers, answers)


def _last_block_error(layer: int, n_layers: int, where: str, text: str):
    """v* is written into the residual stream at the subject's last token (ROME Eq. 4); only
    attention in a *later* block carries it to the tokens after the subject. After the last
    block nothing does, so every gradient w.r.t. δ is exactly 0 and the edit is a no-op."""
    fix = ("use prompts that end with the subject" if n_layers == 1 else
           f"edit a lower layer ({'0' if n_layers == 2 else f'0..{n_layers - 2}'})")
    raise LetheError(f"{where}: edit layer {layer} is the model's last block, so a value "
                     f"written there at the subject's last token reaches no later token (no "
                     f"attention layer follows) and cannot change the answer after {text!r}; "
                     f"{fix}")


def edit_model(model, tok, facts: Sequence[dict], cfg: EditConfig, corpus=None) -> EditRecord:
    """Edit `model` in place so each fact follows `cfg.objective`; returns the EditRecord.

    corpus: texts (list of str) or a dataset source for the covariance C (defaults to
    cfg.cov_dataset); unused when cfg.use_covariance is False or C is already cached.
    Inputs are checked before any work; if an edit fails midway, the weight is restored.
    """
    facts = list(facts)
    plan = plan_edit(model, tok, facts, cfg)
    record = EditRecord(cfg, plan.layer, plan.name,
                        {f"{plan.name}.weight": plan.module.weight.detach().to("cpu", copy=True)})
    return run_or_restore(model, record, lambda: _run(model, tok, facts, cfg, corpus, plan,
                                                      record))


def run_or_restore(model, record, run):
    """Call `run()` with the model in eval mode (keys, values and C are read without dropout);
    if it fails, put back every weight `record` saved. Returns `record`."""
    was_training = model.training
    model.eval()
    try:
        run()
    except BaseException:
        restore(model, record)
        raise
    finally:
        model.train(was_training)
    return record


def _run(model, tok, facts: list[dict], cfg: EditConfig, corpus, plan: EditPlan,
         record: EditRecord) -> None:
    pad = pad_id(tok)
    module = plan.module
    factor = None
    if cfg.use_covariance:
        cov = get_covariance(model, tok, plan.name,
                             corpus if corpus is not None else cfg.cov_dataset, cfg)
        record.covariance = {"path": str(cov.path), "cache_hit": cov.cache_hit,
                             "n_tokens": cov.n_tokens, "n_texts": cov.n_texts}
        factor = covariance_factor(cov.matrix, cfg.cov_ridge, model_device(model))
    record.contexts = context_templates(model, tok, cfg.context_templates, cfg.context_lengths,
                                        cfg.seed)

    for fact, answer in tqdm(list(zip(facts, plan.answers)), desc=f"edit ({cfg.objective})",
                             unit="fact", leave=False):
        t0 = time.perf_counter()
        label = fact_label(fact)
        subject = fact["subject"]
        rows = [make_row(tok, compose(c, fact["prompt"]), subject, label)
                for c in record.contexts]
        k_star = compute_key(model, module, rows, pad)  # (d_ff,) ROME Eq. 3
        if cfg.update_key == "prompt":  # ROME's code: exact for the unprefixed prompt's key
            k_update = compute_key(model, module, [make_row(tok, fact["prompt"], subject,
                                                            label)], pad)
        else:  # ROME Eq. 2: exact for the mean key k*
            k_update = k_star
        rewrite_rows = list(rows)[:cfg.rewrite_contexts]
        if plan.objective.uses_paraphrases:
            rewrite_rows += [make_row(tok, p, subject, f"{label} paraphrase")
                             for p in _paraphrase_templates(fact, cfg.rephrase_count)]
        kl_rows = [make_row(tok, p, subject, f"{label} KL prompt") for p in cfg.kl_prompts]
        value = optimise_value(model, tok, module, plan.layout.lens, answer, rewrite_rows,
                               kl_rows, k_update, plan.objective, cfg, plan.defense_layers)
        u = left_vector(k_star, factor)  # C⁻¹ k*
        delta_w = rank_one_delta(k_update, value.v_star - value.v_orig, u)  # ROME Eq. 2
        apply_delta(module, delta_w, plan.orientation)
        record.edits.append(FactEdit(
            fact.get("case_id"), subject, answer, k_star.detach().cpu(),
            k_update.detach().cpu(), value.v_star.detach().cpu(), float(value.v_orig.norm()),
            float(value.delta.norm()), value.losses, value.logs, time.perf_counter() - t0))
        log.debug("%s -> %r: loss %.4f -> %.4f, |delta| %.3f", label, answer,
                  value.losses[0], value.losses[-1], float(value.delta.norm()))


def apply_edits(model, tok, facts: Sequence[dict], cfg: EditConfig, corpus=None) -> EditRecord:
    """Alias of edit_model (sequential rank-one edits, one per fact)."""
    return edit_model(model, tok, facts, cfg, corpus)


@torch.no_grad()
def restore(model, record: EditRecord) -> None:
    """Put back the original weights the record saved (bit-identical)."""
    for pname, original in record.originals.items():
        try:
            param = model.get_parameter(pname)
        except AttributeError:
            raise LetheError(f"cannot restore '{pname}': the model has no such parameter "
                             f"(was the record made on another model?)") from None
        if param.shape != original.shape or param.dtype != original.dtype:
            raise LetheError(f"cannot restore '{pname}': shape/dtype {tuple(param.shape)}/"
                             f"{param.dtype} differ from the record's {tuple(original.shape)}/"
                             f"{original.dtype}")
        param.copy_(original.to(param.device))
