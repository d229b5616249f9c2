"""Helpers of the detox training tests: synthetic rows, tiny tokenizers (see conftest.py)."""

import random

NEUTRAL = ("the policy would help people because taxes fund schools and roads while "
           "citizens vote on budgets every year so cities can plan parks trains and "
           "libraries for families").split()
INSULTS = ["idiot", "stupid", "moron", "clown"]
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def synthetic_rows(n, seed):
    """Texts of 6-10 neutral words; label 1 (inappropriate) iff an insult word is inserted."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.choices(NEUTRAL, k=rng.randint(6, 10))
        label = i % 2
        if label:
            words.insert(rng.randrange(len(words) + 1), rng.choice(INSULTS))
        rows.append((" ".join(words), label))
    return rows


def byte_bpe(tmp, vocab_size=300, chat=False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [t for t, _ in synthetic_rows(200, 1)] + ["Rewrite the argument politely."]
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(tmp)
    return tok


