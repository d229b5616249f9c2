"""Context templates: short model-written prefixes the prompt is placed after.

ROME (Meng et al. 2022, Sec. 3.1, Eq. 3 and 4) averages the key k* and fits the value v* over
prompts "x_j + p" with random prefixes x_j sampled from the model itself, so the edit holds in
varied contexts rather than only at the start of a text. Sampling here is top-5, seeded.
"""

from __future__ import annotations

import torch

from lethe.lm import model_device


@torch.no_grad()
def sample_prefixes(model, tok, length: int, count: int, seed: int, top_k: int = 5) -> list[str]:
    """`count` texts of `length` sampled tokens, starting from the BOS (or EOS) token."""
    if count == 0:
        return []
    device = model_device(model)
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if start is None:
        start = 0
    gen = torch.Generator(device=device).manual_seed(seed)
    ids = torch.full((count, 1), int(start), dtype=torch.long, device=device)
    special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long, device=device)
    for _ in range(length):
        logits = model(input_ids=ids).logits[:, -1].float()  # (count, V)
        logits[:, special] = float("-inf")  # a prefix of special tokens would be empty text
        top = logits.topk(min(top_k, logits.shape[-1]), dim=-1)
        choice = torch.multinomial(torch.softmax(top.values, -1), 1, generator=gen)  # (count, 1)
        ids = torch.cat([ids, top.indices.gather(-1, choice)], dim=1)
    texts = tok.batch_decode(ids[:, 1:], skip_special_tokens=True)
    # braces would be read as the placeholder; newlines would split the "sentence"
    return [" ".join(t.replace("{", "(").replace("}", ")").split()) for t in texts]


def context_templates(model, tok, fixed: tuple[str, ...],
                      lengths: tuple[tuple[int, int], ...], seed: int) -> list[str]:
    """`fixed` + one 'prefix. {}' template per sampled prefix (ROME's recipe)."""
    out = list(fixed)
    was_training = model.training
    model.eval()
    try:
        for i, (length, count) in enumerate(lengths):
            out += [f"{p}. {{}}" for p in sample_prefixes(model, tok, length, count, seed + i)]
    finally:
        model.train(was_training)
    return out
