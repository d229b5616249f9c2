"""Turning forget/retain text into training batches.

- `tokenize_texts` cuts each text into chunks of at most `max_length` tokens (BOS/EOS as the
  tokenizer adds them, plus EOS at the end of a document so models learn where texts stop).
- `LMCollator` pads a list of examples into `input_ids`, `attention_mask`, `labels` (-100 on
  padding) and passes any other per-example tensors/floats through (e.g. cached reference
  log-probs, `ref_logp`).
- `PairedDataset` yields `{"forget": ex_f, "retain": ex_r}`; one epoch = one pass over the
  forget set, retain examples cycle with a seeded permutation (MUSE/open-unlearning pair each
  forget example with a retain example the same way).
- `PairedCollator` collates both sides with `LMCollator`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch.utils.data import Dataset

from lethe.lm import pad_right


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int,
                   add_eos: bool = True) -> list[dict]:
    """Each text → one or more examples `{"input_ids": list[int]}` of ≤ max_length tokens."""
    out = []
    eos = tokenizer.eos_token_id
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        if add_eos and eos is not None and (not ids or ids[-1] != eos):
            ids = ids + [eos]
        for start in range(0, len(ids), max_length):
            chunk = ids[start:start + max_length]
            if len(chunk) > 1:  # a 1-token chunk has nothing to predict
                out.append({"input_ids": chunk})
    return out


@dataclass
class LMCollator:
    """Right-pads examples; labels are the inputs with padding set to -100."""

    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict:
        ids, mask = pad_right([e["input_ids"] for e in examples], self.pad_token_id)  # (B, T)
        labels = ids.masked_fill(mask == 0, -100)  # (B, T)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        for key in examples[0]:
            if key != "input_ids":
                batch[key] = torch.as_tensor([e[key] for e in examples])
        return batch


class TextDataset(Dataset):
    """A list of tokenized examples (plain language-model training)."""

    def __init__(self, examples: list[dict]):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


class PairedDataset(Dataset):
    """Item i = (forget example i, a retain example); length = len(forget)."""

    def __init__(self, forget: list[dict], retain: list[dict] | None, seed: int = 0):
        if not forget:
            raise ValueError("the forget set is empty")
        self.forget, self.retain = forget, retain or []
        order = list(range(len(self.retain)))
        random.Random(seed).shuffle(order)
        self.retain_order = order

    def __len__(self):
        return len(self.forget)

    def __getitem__(self, i):
        item = {"forget": self.forget[i]}
        if self.retain:
            item["retain"] = self.retain[self.retain_order[i % len(self.retain)]]
        return item


@dataclass
class PairedCollator:
    pad_token_id: int

    def __call__(self, items: list[dict]) -> dict:
        collate = LMCollator(self.pad_token_id)
        batch = {"forget": collate([it["forget"] for it in items])}
        if "retain" in items[0]:
            batch["retain"] = collate([it["retain"] for it in items])
        return batch
