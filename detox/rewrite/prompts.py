"""Prompts: turn (input, context, demonstrations) into the text a model reads, and its output
back into a rewrite. Shared by every rewriter and by `detox train` (the policy is trained on
the prompt it is later used with)."""

from __future__ import annotations

from typing import Sequence

from lethe.errors import LetheError


class PromptBuilder:
    """Turns (input, context, demonstrations) into one prompt string in a resolved format."""

    def __init__(self, cfg, tokenizer=None, fmt: str = "chat"):
        if fmt == "chat" and (tokenizer is None or not getattr(tokenizer, "chat_template", None)):
            raise LetheError("prompt format 'chat' needs a tokenizer with a chat template; use "
                             "rewriter.prompt.format=plain")
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.fmt = fmt

    def message(self, text: str, context: Sequence[str] = ()) -> str:
        """How one input (with its context, if used) is shown to the model."""
        if context and self.cfg.use_context:
            return self.cfg.context_template.format(
                context=self.cfg.context_separator.join(context), text=text)
        return text

    def build(self, text: str, context: Sequence[str] = (), demos: Sequence = ()) -> str:
        return getattr(self, f"_build_{self.fmt}")(text, tuple(context), list(demos))

    def _build_chat(self, text, context, demos):
        messages = []
        if self.cfg.instruction:
            messages.append({"role": "system", "content": self.cfg.instruction_text})
        for d in demos:
            messages.append({"role": "user", "content": self.message(d.source, d.context)})
            messages.append({"role": "assistant", "content": d.target})
        messages.append({"role": "user", "content": self.message(text, context)})
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)

    def _build_plain(self, text, context, demos):
        c = self.cfg
        parts = [c.instruction_text + "\n\n"] if c.instruction else []
        for d in demos:
            parts.append(f"{c.source_label} {self.message(d.source, d.context)}\n"
                         f"{c.target_label} {d.target}\n\n")
        parts.append(f"{c.source_label} {self.message(text, context)}\n{c.target_label}")
        return "".join(parts)

    def _build_raw(self, text, context, demos):
        if demos:
            raise LetheError("prompt format 'raw' cannot show demonstrations; set rewriter.k=0 "
                             "or use the chat/plain format")
        return self.cfg.template.format(text=text,
                                        context=self.cfg.context_separator.join(context))

    def clean(self, generated: str) -> str:
        """The rewrite inside a generation: first non-empty line, without a repeated label."""
        out = generated.strip()
        if self.cfg.first_line:
            out = next((line.strip() for line in out.splitlines() if line.strip()), "")
        label = self.cfg.target_label.strip()
        if self.fmt == "plain" and label and out.startswith(label):
            out = out[len(label):].strip()
        return out
