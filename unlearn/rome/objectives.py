"""What v* is optimised for: ROME's target, or a deletion objective (Patil et al. 2024, Sec. 5).

Each objective names the answer string its rewriting prompts are scored on and a loss term
over an `ObjectiveBatch`; values.py adds the KL and weight-decay terms (ROME Eq. 4). Register
one with `@register(name, answer=...)`.

- error_injection: ROME as published: maximise log p(false target) (a `target_new`, or else
  another fact's true answer of the same relation).
- fact_erasure: minimise p(true answer) = exp(−mean NLL) (Patil et al. Sec. 5, "Fact Erasure").
- empty_response: maximise log p(dummy answer), e.g. "dummy" ("Empty Response").
- head_projection: a hinge that pushes the answer's first token out of the top-k and the
  bottom-k of the logit lens at the defended layers ("Head Projection Defense"), plus
  erasure_weight × fact erasure (0 by default, as in the paper's code).
- max_entropy: − the entropy of the logit-lens distributions at the defended layers
  ("Max-Entropy Defense"), plus erasure_weight × fact erasure (0 by default).
- input_rephrasing: fact erasure over the rewriting prompts *and* paraphrases of the prompt
  ("Input Rephrasing Defense").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lethe.errors import LetheError
from lethe.recipe import nearest


@dataclass
class ObjectiveBatch:
    answer_logprobs: torch.Tensor  # (R, A) log-prob of each answer token; 0 where padded
    answer_mask: torch.Tensor  # (R, A) 1.0 on answer tokens
    answer_first: torch.Tensor  # (R,) first answer token id
    lens_logits: torch.Tensor | None  # (L, R, V) logit lens where the first answer token is
    #                                    predicted, at the defended layers (None if unused)


@dataclass(frozen=True)
class Objective:
    name: str
    answer: Callable[[dict, object, list], str]  # (fact, cfg, all facts) -> answer string
    loss: Callable[[ObjectiveBatch, object], tuple[torch.Tensor, dict]]
    early_stop: bool = False  # stop once the term < cfg.v_stop_loss (target-NLL objectives)
    uses_lens: bool = False  # needs ObjectiveBatch.lens_logits
    uses_paraphrases: bool = False  # rewriting prompts include cfg.rephrase_count paraphrases


OBJECTIVES: dict[str, Objective] = {}


def register(name: str, *, answer, early_stop=False, uses_lens=False, uses_paraphrases=False):
    def deco(fn):
        OBJECTIVES[name] = Objective(name, answer, fn, early_stop, uses_lens, uses_paraphrases)
        return fn
    return deco


def unknown_objective(name: str) -> str:
    return (f"unknown edit objective '{name}'{nearest(name, OBJECTIVES)}; valid: "
            f"{', '.join(sorted(OBJECTIVES))}")


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise LetheError(unknown_objective(name))
    return OBJECTIVES[name]


# ---------------------------------------------------------------------------------------------
# answers


def true_answer(fact: dict, cfg, facts: list) -> str:
    return fact["target_true"]


def dummy_answer(fact: dict, cfg, facts: list) -> str:
    return cfg.dummy_target


def false_answer(fact: dict, cfg, facts: list) -> str:
    """`target_new` if the fact has one, else the next other true answer of the same relation
    (sorted, cyclic) — a plausible but wrong object, as CounterFact's targets are."""
    if fact.get("target_new"):
        return fact["target_new"]
    own = fact["target_true"]
    pool = sorted({f["target_true"] for f in facts
                   if f.get("relation") == fact.get("relation") and f["target_true"] != own})
    if not pool:
        raise LetheError(f"fact {fact.get('case_id', '?')} has no target_new and no other fact of "
                         f"relation {fact.get('relation')!r} to borrow a false answer from; add "
                         f"'target_new' to the fact for error_injection")
    later = [t for t in pool if t > own]
    return later[0] if later else pool[0]


# ---------------------------------------------------------------------------------------------
# terms


def answer_nll(batch: ObjectiveBatch) -> torch.Tensor:
    """(R,) mean negative log-likelihood per answer token of each rewriting prompt."""
    return -(batch.answer_logprobs * batch.answer_mask).sum(1) / batch.answer_mask.sum(1)


def erasure_term(batch: ObjectiveBatch) -> torch.Tensor:
    """p(answer) as the geometric mean over prompts and tokens: exp(−mean NLL)."""
    return torch.exp(-answer_nll(batch).mean())


def margin_term(lens: torch.Tensor, answer: torch.Tensor, k: int, margin: float,
                on: str = "prob", rank: str = "all") -> torch.Tensor:
    """Head-projection hinge, mean over layers and prompts.

    lens: (L, R, V) logit-lens logits; answer: (R,). With z the scores (softmax probabilities,
    or the logits) and z_(k) / z_(−k) the k-th largest / smallest score:
    relu(z_a − z_(k) + m) + relu(z_(−k) − z_a + m).

    rank "all" (Vaidehi99/InfoDeletionAttacks rome/compute_v.py, `sorted_layer_logits[:, :,
    -k]` and `[:, :, k-1]`): z_(k) is taken from the whole sorted vocabulary, the answer
    included. Off by one: an answer ranked exactly k-th has z_a = z_(k), so its hinge is 0
    although it is in the top-k (the attack's candidate set). rank "others": z_(k) among the
    *other* tokens, so the hinge is 0 exactly when the answer is (by m) outside both k-sets.
    """
    scores = torch.softmax(lens, dim=-1) if on == "prob" else lens
    a = answer.view(1, -1, 1).expand(scores.shape[0], -1, 1)  # (L, R, 1)
    z_a = scores.gather(-1, a).squeeze(-1)  # (L, R)
    high, low = scores, scores
    if rank == "others":
        high = scores.scatter(-1, a, float("-inf"))
        low = scores.scatter(-1, a, float("inf"))
    kth_top = high.topk(k, dim=-1).values[..., -1]  # (L, R)
    kth_bottom = low.topk(k, dim=-1, largest=False).values[..., -1]
    hinge = torch.relu(z_a - kth_top + margin) + torch.relu(kth_bottom - z_a + margin)
    return hinge.mean()


def entropy_term(lens: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the logit-lens distributions, lens (L, R, V)."""
    logp = torch.log_softmax(lens, dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


# ---------------------------------------------------------------------------------------------
# objectives


@register("error_injection", answer=false_answer, early_stop=True)
def error_injection(batch: ObjectiveBatch, cfg):
    nll = answer_nll(batch).mean()
    return nll, {"nll": nll.item()}


@register("empty_response", answer=dummy_answer, early_stop=True)
def empty_response(batch: ObjectiveBatch, cfg):
    nll = answer_nll(batch).mean()
    return nll, {"nll": nll.item()}


@register("fact_erasure", answer=true_answer)
def fact_erasure(batch: ObjectiveBatch, cfg):
    p = erasure_term(batch)
    return p, {"p_answer": p.item()}


@register("input_rephrasing", answer=true_answer, uses_paraphrases=True)
def input_rephrasing(batch: ObjectiveBatch, cfg):
    p = erasure_term(batch)
    return p, {"p_answer": p.item()}


@register("head_projection", answer=true_answer, uses_lens=True)
def head_projection(batch: ObjectiveBatch, cfg):
    p = erasure_term(batch)
    hinge = margin_term(batch.lens_logits, batch.answer_first, cfg.defense_k, cfg.defense_margin,
                        cfg.margin_on, cfg.margin_rank)
    return cfg.erasure_weight * p + cfg.defense_weight * hinge, {"p_answer": p.item(),
                                                                 "margin": hinge.item()}


@register("max_entropy", answer=true_answer, uses_lens=True)
def max_entropy(batch: ObjectiveBatch, cfg):
    p = erasure_term(batch)
    ent = entropy_term(batch.lens_logits)
    return cfg.erasure_weight * p - cfg.defense_weight * ent, {"p_answer": p.item(),
                                                               "entropy": ent.item()}
