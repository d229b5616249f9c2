"""The policy a rewriter is trained as, shared by RL and SFT so that it sees the same text in
training and in use: `detox rewrite`'s prompt (format, instruction, chat template), the
policy's loading (an SFT adapter continues as a trainable adapter) and its saving (an adapter
whose adapter_config.json names a base loadable anywhere, swapped in atomically).
"""

from __future__ import annotations

import json
from pathlib import Path

from detox.train.recipe import DetoxTrainRecipe
from lethe.recipe import to_dict


# ---------------------------------------------------------------------------------------------
# prompts


def prompt_builder(tokenizer, cfg):
    """`detox rewrite`'s PromptBuilder for `cfg` (a detox.rewrite.recipe.PromptConfig); format
    auto = chat when the tokenizer has a chat template, else plain (as `detox rewrite` resolves
    it)."""
    from detox.rewrite.prompts import PromptBuilder

    fmt = cfg.format
    if fmt == "auto":
        fmt = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    return PromptBuilder(cfg, tokenizer, fmt)


def policy_prompt(builder, text: str):
    """What the RL trainer gets: the chat messages `detox rewrite` would render (TRL applies
    the same template with the generation prompt) or, for plain/raw formats, the string."""
    if builder.fmt == "chat":
        system = ([{"role": "system", "content": builder.cfg.instruction_text}]
                  if builder.cfg.instruction else [])
        return system + [{"role": "user", "content": builder.message(text)}]
    return builder.build(text)


def special_tokens(builder) -> bool:
    """Add the tokenizer's special tokens to a rendered prompt? Not to chat-rendered ones
    (the template writes its own BOS), as in `detox rewrite`."""
    return builder.fmt != "chat"


# ---------------------------------------------------------------------------------------------
# policy in, policy out


def load_policy(recipe: DetoxTrainRecipe):
    """(model, tokenizer, base_spec). An adapter directory (e.g. an SFT warm start) is loaded
    trainable, so RL continues that adapter and its KL reference is the warm-started policy."""
    from lethe.loading import load_model, load_tokenizer, resolve_model

    m = recipe.model
    tok = load_tokenizer(m.name, revision=m.revision, trust_remote_code=m.trust_remote_code)
    src = resolve_model(m.name)
    if src.kind == "adapter":
        from peft import PeftModel

        base = load_model(src.base, dtype=m.dtype, revision=m.revision,
                          trust_remote_code=m.trust_remote_code)
        model = PeftModel.from_pretrained(base, src.path, is_trainable=True)
        return model, tok, src.base
    model = load_model(m.name, dtype=m.dtype, revision=m.revision,
                       trust_remote_code=m.trust_remote_code)
    return model, tok, m.name


def portable_base(spec: str) -> str:
    """The base name to record in adapter_config.json: an alias or hub id as given (loadable
    anywhere by lethe.loading), a local path made absolute."""
    from lethe.loading import BUNDLED_GGUF

    p = Path(spec).expanduser()
    if spec in BUNDLED_GGUF or spec == "minilm" or not p.exists():
        return spec
    return str(p.resolve())


def record_base(model_dir: Path, base_spec: str) -> None:
    """Point an adapter's base_model_name_or_path at `base_spec` (the cached GGUF conversion
    path PEFT records would break on another machine; the alias does not)."""
    from lethe.report import atomic_write_text

    path = Path(model_dir) / "adapter_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    cfg["base_model_name_or_path"] = portable_base(base_spec)
    atomic_write_text(path, json.dumps(cfg, indent=2) + "\n")


def save_policy(trainer, tokenizer, out: Path, base_spec: str, merge: bool) -> Path:
    """OUTPUT_DIR/model (adapter or full checkpoint) + tokenizer, swapped in atomically; with
    `merge`, also OUTPUT_DIR/merged (the adapter folded into the base weights)."""
    import shutil

    from lethe.outputs import write_dir_atomically

    tmp = out / ".model.partial"
    if trainer.accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of an interrupted save
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # every rank: gathers ZeRO-3 shards; rank 0 writes
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        return out / "model"
    shutil.rmtree(tmp / "ref", ignore_errors=True)  # TRL's frozen copy of a warm-start adapter

    def write(dest):
        shutil.move(str(tmp), str(dest))
        tokenizer.save_pretrained(dest)
        record_base(dest, base_spec)

    model_dir = write_dir_atomically(out / "model", write)
    if merge and (model_dir / "adapter_config.json").is_file():
        from lethe.loading import load_model

        merged = load_model(str(model_dir), dtype="auto", merge_adapter=True)
        write_dir_atomically(out / "merged", lambda d: (merged.save_pretrained(d),
                                                       tokenizer.save_pretrained(d)))
    return model_dir


def run_results(recipe: DetoxTrainRecipe, steps: int, train_s: float, model_dir: Path) -> dict:
    """The part of results.json every `detox train` run has (rl and sft)."""
    from lethe.loading import model_identity
    from lethe.report import library_versions, machine_info

    return {"command": "detox train", "algorithm": recipe.algorithm, "recipe": to_dict(recipe),
            "model": model_identity(recipe.model.name, recipe.model.revision), "steps": steps,
            "train_seconds": round(train_s, 1),
            "seconds_per_step": round(train_s / max(steps, 1), 2), "saved": str(model_dir),
            "versions": library_versions(), "machine": machine_info()}
