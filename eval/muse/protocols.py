"""C5 scalability and C6 sustainability: protocols over several checkpoints (MUSE §3.2).

Neither is a number one model has. A protocol takes the checkpoints another step produced —
one per scal forget set `scal/forget_1..N` (growing removal requests), or one after each
sequential request `sust/forget_1..N` — evaluates each with the selected metrics (MUSE
tracks utility, KnowMem_r, above all) and tabulates the criteria per step. Checkpoint i
belongs to `{config}/forget_i`; the suite checks those splits exist and records their sizes
(the x axis of MUSE's scalability plot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lethe.errors import LetheError
from lethe.loading import load_table


@dataclass(frozen=True)
class Protocol:
    name: str  # --protocol value and the DATA config holding forget_1..N
    criterion: str  # the MUSE criterion it measures
    x_label: str  # what the per-step axis means
    cumulative: bool  # whether step i has unlearned forget_1..i (sust) or just forget_i (scal)


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(p: Protocol) -> Protocol:
    PROTOCOLS[p.name] = p
    return p


register_protocol(Protocol("scal", "C5 scalability (removal-request size)",
                           "forget set size (words)", cumulative=False))
register_protocol(Protocol("sust", "C6 sustainability (sequential requests)",
                           "sequential requests (words unlearned so far)", cumulative=True))


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise LetheError(f"unknown protocol '{name}'; valid: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]


def protocol_steps(name: str, data: str, labels: Sequence[str], *,
                   revision: str | None = None) -> list[dict]:
    """One record per checkpoint: its label, its forget split and that split's size."""
    proto = get_protocol(name)
    steps, words_so_far = [], 0
    for i, label in enumerate(labels, start=1):
        try:
            ds = load_table(data, config=proto.name, split=f"forget_{i}", columns=("text",),
                            revision=revision)
        except LetheError as err:
            raise LetheError(f"--protocol {name} with {len(labels)} checkpoints needs "
                             f"{proto.name}/forget_1..{len(labels)}: {err}") from None
        words = sum(len(t.split()) for t in ds["text"])
        words_so_far += words
        steps.append({"step": i, "label": label, "split": f"{proto.name}/forget_{i}",
                      "n_texts": len(ds), "n_words": words, "n_words_cumulative": words_so_far})
    return steps
