"""Tiny on-disk models for the preflight tests: two Llama shapes and LoRA adapters (seconds)."""

import json
from pathlib import Path

WORDS = ["you", "are", "an", "idiot", "please", "be", "kind", "shut", "up", "thanks", "the",
         "cat", "sat", "on", "mat", "was", "born", "in"]


def save_tokenizer(path, extra: int = 0):
    """A word-level tokenizer of WORDS (+ `extra` filler tokens) with pad/unk/bos/eos."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<unk>", "<s>", "</s>"] + WORDS + [f"w{i}" for i in range(extra)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>",
                                  bos_token="<s>", eos_token="</s>")
    tok.save_pretrained(path)
    return tok


def save_llama(path, hidden: int = 16, vocab_extra: int = 0) -> str:
    """A random 1-layer Llama with `hidden` features and its tokenizer, saved to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tok = save_tokenizer(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok) + vocab_extra, hidden_size=hidden,
                      intermediate_size=2 * hidden, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return str(path)


def save_adapter(base_dir: str, out, claims_base: str | None = None) -> str:
    """A LoRA adapter (r=2 on q_proj, v_proj) trained-shape for `base_dir`; with `claims_base`
    its adapter_config.json names that model instead (an adapter for another base)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(out)
    if claims_base:
        cfg_path = Path(out) / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = claims_base
        cfg_path.write_text(json.dumps(cfg))
    return str(out)


def files_under(root) -> set[str]:
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}
