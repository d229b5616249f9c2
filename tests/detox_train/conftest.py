"""Tiny models for the detox training tests, built in memory and saved under tmp_path."""

import pytest

from tests.helpers import fixture_seed

from detox_tiny import INSULTS, NEUTRAL, byte_bpe


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A ~100k-parameter Llama + byte-level BPE tokenizer with a chat template, on disk."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny_llama")
    tok = byte_bpe(path, chat=True)
    torch.manual_seed(fixture_seed(0))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                      initializer_range=0.2)  # peaked logits: LoRA can move them in a few steps
    LlamaForCausalLM(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A ~60k-parameter BERT encoder (no head) + word-level tokenizer, on disk."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny_bert")
    words = sorted(set(NEUTRAL + INSULTS))
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    from tokenizers.processors import TemplateProcessing

    tk.post_processor = TemplateProcessing(single="[CLS] $A [SEP]",
                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                  cls_token="[CLS]", sep_token="[SEP]")
    tok.save_pretrained(path)
    torch.manual_seed(fixture_seed(0))
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(path)
    return str(path)
