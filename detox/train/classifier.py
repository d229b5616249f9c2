"""Fine-tune a sequence classifier (the RL reward's appropriateness model) and report macro-F1.

Ziegenbein et al. (ACL 2024) reward P(appropriate | rewrite) from a DeBERTa-large classifier
trained on the appropriateness corpus (Ziegenbein et al., ACL 2023; binary `Inappropriateness`,
fixed folds). Here any encoder can be fine-tuned through the shared trainer (`LetheTrainer` with
a cross-entropy `loss_fn`), so DeepSpeed, LoRA-free full fine-tuning, resume, progress and the
JSONL log behave as everywhere else; offline the base is all-MiniLM-L6-v2 with a new head.
The headline number is macro-F1 on the test fold (scikit-learn), beside the majority-class
baseline so "better than chance" is visible.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from lethe.errors import LetheError
from lethe.outputs import write_dir_atomically
from lethe.recipe import dump_yaml, to_dict

from detox.train.recipe import ClassifierRecipe, LabelledData

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# data


def _int_label(value, where: str, num_labels: int) -> int:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < num_labels:
        raise LetheError(f"{where}: label {value!r} is not a class id in 0..{num_labels - 1}; "
                         f"set model.labels to name every class or fix data.label_field")
    return value


def load_folds(data: LabelledData, num_labels: int) -> dict[str, tuple[list[str], list[int]]]:
    """{"train"|"valid"|"test": (texts, labels)} from one table with a fold column, or from
    named splits when `fold_field` is None. Rows with an empty text are dropped."""
    from lethe.loading import load_table

    wanted = {"train": data.train, "valid": data.valid, "test": data.test}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    columns = (data.text_field, data.label_field)
    tables = {}
    if data.fold_field:
        table = load_table(data.source, config=data.config, revision=data.revision,
                           columns=columns + (data.fold_field,))
        folds = [str(v) for v in table[data.fold_field]]
        present = sorted(set(folds))
        for key, value in wanted.items():
            idx = [i for i, f in enumerate(folds) if f == str(value)]
            if not idx:
                raise LetheError(f"data.{key}: no row of {data.source} has {data.fold_field} = "
                                 f"{value!r} (values: {', '.join(present)})")
            tables[key] = table.select(idx)
    else:
        for key, split in wanted.items():
            tables[key] = load_table(data.source, config=data.config, split=split,
                                     revision=data.revision, columns=columns)
    out = {}
    for key, t in tables.items():
        texts, labels = [], []
        for i, (text, label) in enumerate(zip(t[data.text_field], t[data.label_field])):
            if text is None or not str(text).strip():
                continue
            texts.append(str(text))
            labels.append(_int_label(label, f"{data.source} ({key} row {i})", num_labels))
        out[key] = (texts, labels)
    return out


def subsample(texts: list[str], labels: list[int], n: int | None, seed: int):
    if n is None or n >= len(texts):
        return texts, labels
    import random

    idx = sorted(random.Random(seed).sample(range(len(texts)), n))
    return [texts[i] for i in idx], [labels[i] for i in idx]


# ---------------------------------------------------------------------------------------------
# model, loss, prediction


def load_classifier(spec: str, labels: tuple[str, ...], *, dtype="float32", revision=None,
                    trust_remote_code=False):
    """A sequence classifier with `len(labels)` outputs named `labels` (new head if needed)."""
    from lethe.loading import load_model, local_checkpoint

    n = len(labels)
    model = load_model(spec, task="sequence-classification", dtype=dtype, revision=revision,
                       trust_remote_code=trust_remote_code)
    if model.config.num_labels != n:
        # load_model has no num_labels argument; rebuild the head at the requested size.
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(
            local_checkpoint(spec), num_labels=n, ignore_mismatched_sizes=True,
            revision=revision, trust_remote_code=trust_remote_code, dtype=model.dtype)
    model.config.id2label = {i: name for i, name in enumerate(labels)}
    model.config.label2id = {name: i for i, name in enumerate(labels)}
    return model


def make_loss_fn(class_weight=None):
    """Cross-entropy over the classifier's logits; logs the batch accuracy as `train_acc`."""
    import torch.nn.functional as F

    def loss_fn(model, batch):
        labels = batch["labels"]  # (B,)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits  # (B, C)
        weight = class_weight.to(logits.device, logits.dtype) if class_weight is not None else None
        loss = F.cross_entropy(logits.float(), labels, weight=weight)
        acc = (logits.argmax(-1) == labels).float().mean()
        return loss, {"train_acc": acc.item()}

    return loss_fn


def balanced_weights(labels: list[int], num_labels: int):
    """Inverse class frequency, n / (C * n_c) (scikit-learn's "balanced")."""
    import torch

    counts = torch.bincount(torch.tensor(labels), minlength=num_labels).float()
    return len(labels) / (num_labels * counts.clamp(min=1))


def predict_proba(model, tokenizer, texts: list[str], *, batch_size: int = 64,
                  max_length: int = 128):
    """Class probabilities, (N, C) numpy, in the order of `texts` (batched by length)."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc="classify", unit="batch",
                              leave=False, disable=None):
                idx = order[start:start + batch_size]
                enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length,
                                padding=True, return_tensors="pt").to(device)
                probs = model(**enc).logits.float().softmax(-1)  # (B, C)
                out[idx] = probs.cpu().numpy()
    finally:
        if was_training:
            model.train()
    return out


def scores(labels: list[int], probs, num_labels: int) -> dict:
    """Macro-F1, accuracy, per-class F1 and the confusion matrix (scikit-learn)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    pred = probs.argmax(-1).tolist()
    classes = list(range(num_labels))
    majority = max(classes, key=lambda c: labels.count(c))
    return {
        "n": len(labels),
        "macro_f1": float(f1_score(labels, pred, average="macro", labels=classes,
                                   zero_division=0)),
        "accuracy": float(accuracy_score(labels, pred)),
        "f1_per_class": [float(v) for v in f1_score(labels, pred, average=None, labels=classes,
                                                    zero_division=0)],
        "confusion": confusion_matrix(labels, pred, labels=classes).tolist(),
        "majority_macro_f1": float(f1_score(labels, [majority] * len(labels), average="macro",
                                            labels=classes, zero_division=0)),
    }


# ---------------------------------------------------------------------------------------------
# the command's work


def tokenize(tokenizer, texts, labels, max_length: int):
    import datasets

    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict({**enc, "labels": labels})


def recipe_folds(recipe: ClassifierRecipe) -> dict[str, tuple[list[str], list[int]]]:
    """The labelled folds of a recipe: from `pairs` when it is set, else from `data`."""
    n_labels = len(recipe.model.labels)
    if recipe.pairs is not None:
        from detox.train.classifier_head import pair_folds

        return pair_folds(recipe.pairs, recipe.model.labels, recipe.seed)
    folds = load_folds(recipe.data, max(n_labels, 2))
    texts, labels = subsample(*folds["train"], recipe.data.max_train, recipe.seed)
    return {**folds, "train": (texts, labels)}


def train_classifier(recipe: ClassifierRecipe, *, resume=False) -> dict:
    """Fine-tune (or fit an embedding head), evaluate on the valid/test folds, save model/ and
    results; return results."""
    from transformers import set_seed

    from lethe.cli import is_main_process

    out = Path(recipe.output_dir)
    n_labels = len(recipe.model.labels)
    if n_labels < 2:
        raise LetheError("model.labels: a classifier needs at least two labels")
    set_seed(recipe.seed)
    folds = recipe_folds(recipe)
    train_texts, train_labels = folds["train"]
    fit = _fit_head if recipe.kind == "embedding_head" else _fit_finetune
    results, probs, save = fit(recipe, folds, resume)
    results = {**_common_results(recipe, folds), **results}
    if not is_main_process():
        return results
    for key in ("valid", "test"):
        if key in folds:
            results[key] = scores(folds[key][1], probs(key), n_labels)
    write_dir_atomically(out / "model", save)
    results["saved"] = str(out / "model")
    _write_report(recipe, results)
    return results


def _common_results(recipe: ClassifierRecipe, folds) -> dict:
    from lethe.loading import model_identity
    from lethe.report import library_versions, machine_info

    from detox.train.classifier_head import data_hash

    texts, labels = folds["train"]
    n_labels = len(recipe.model.labels)
    source = recipe.pairs.source if recipe.pairs is not None else recipe.data.source
    ident = (model_identity(recipe.model.name, recipe.model.revision)
             if not recipe.model.name.startswith("hashing") else {"spec": recipe.model.name})
    return {"command": "detox train-classifier", "kind": recipe.kind, "recipe": to_dict(recipe),
            "model": ident, "data": {"source": source, "n_train": len(texts),
                                     "train_label_counts": [labels.count(c)
                                                            for c in range(n_labels)],
                                     "train_sha256_16": data_hash(folds)},
            "labels": list(recipe.model.labels), "versions": library_versions(),
            "machine": machine_info()}


def _fit_finetune(recipe: ClassifierRecipe, folds, resume):
    """(results, fold -> probabilities, save(dir)) for an encoder fine-tuned end to end."""
    from lethe.loading import load_tokenizer

    tok = load_tokenizer(recipe.model.name, revision=recipe.model.revision,
                         trust_remote_code=recipe.model.trust_remote_code)
    trainer, train_s = _train(recipe, tok, *folds["train"], resume)
    model = trainer.model

    def probs(key):
        return predict_proba(model, tok, folds[key][0], batch_size=recipe.eval_batch_size,
                             max_length=recipe.model.max_length)

    def save(tmp):
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)

    return {"train_seconds": round(train_s, 1), "steps": trainer.state.global_step}, probs, save


def _fit_head(recipe: ClassifierRecipe, folds, resume):
    """(results, fold -> probabilities, save(dir)) for a logistic-regression head on the
    frozen embedder (eval/detox/head.py)."""
    from eval.detox.head import save_head

    from detox.train.classifier_head import fit_head

    fit = fit_head(recipe, folds)
    extra = {"C": fit["C"], "trained_on": recipe.pairs.source if recipe.pairs is not None
             else recipe.data.source}
    results = {"train_seconds": fit["embed_seconds"] + fit["fit_seconds"],
               "embed_seconds": fit["embed_seconds"], "fit_seconds": fit["fit_seconds"],
               "C": fit["C"], "steps": 0}

    def save(tmp):
        save_head(Path(tmp), fit["weight"], fit["bias"], recipe.model.name, recipe.model.labels,
                  extra)

    return results, lambda key: fit["probs"][key], save


def _train(recipe: ClassifierRecipe, tok, texts: list[str], labels: list[int], resume):
    """(trainer, seconds): cross-entropy fine-tuning through the shared trainer."""
    from transformers import DataCollatorWithPadding

    from lethe.trainer import DivergenceGuard, LetheTrainer, resume_checkpoint, \
        training_arguments

    m = recipe.model
    model = load_classifier(m.name, m.labels, dtype=m.dtype, revision=m.revision,
                            trust_remote_code=m.trust_remote_code)
    if model.config.pad_token_id is None and tok.pad_token_id is not None:
        model.config.pad_token_id = tok.pad_token_id
    weight = balanced_weights(labels, len(m.labels)) if recipe.class_weights == "balanced" \
        else None
    out = Path(recipe.output_dir)
    trainer = LetheTrainer(model=model, args=training_arguments(recipe.train, out,
                                                                seed=recipe.seed),
                           train_dataset=tokenize(tok, texts, labels, m.max_length),
                           data_collator=DataCollatorWithPadding(tok),
                           loss_fn=make_loss_fn(weight),
                           guard=DivergenceGuard(recipe.guard.max_abs_loss),
                           progress_desc="train-classifier")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(out, resume))
    return trainer, time.perf_counter() - start


def _write_report(recipe: ClassifierRecipe, results: dict) -> None:
    from lethe.report import atomic_write_text, markdown_table, write_json

    out = Path(recipe.output_dir)
    write_json(out / "results.json", results)
    rows = [[key, results[key]["n"], results[key]["macro_f1"], results[key]["accuracy"],
             results[key]["majority_macro_f1"]] for key in ("valid", "test") if key in results]
    source = recipe.pairs.source if recipe.pairs is not None else recipe.data.source
    md = (f"# detox train-classifier ({recipe.kind}): {recipe.model.name} on {source}\n\n"
          f"{results['data']['n_train']} training texts, {results['steps']} steps in "
          f"{results['train_seconds']:.0f} s. Labels: {', '.join(recipe.model.labels)}.\n\n"
          + markdown_table(["fold", "n", "macro-F1", "accuracy", "majority-class macro-F1"],
                           rows, digits=3)
          + f"\nModel: `{out / 'model'}`\n\n```yaml\n{dump_yaml(recipe)}```\n")
    atomic_write_text(out / "results.md", md)
