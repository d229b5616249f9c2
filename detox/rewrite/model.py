"""The `model` rewriter: any causal or seq2seq model (a fine-tuned rewriter, an RL policy's
adapter), prompted without demonstrations."""

from __future__ import annotations

from dataclasses import dataclass, field

from detox.rewrite.recipe import LMFields, PromptConfig, rewriter
from detox.rewrite.rewriters import prompt_rewriter


@rewriter("model")
@dataclass(frozen=True)
class ModelConfig(LMFields):
    """Any causal or seq2seq model (plus LoRA adapter), prompted without demonstrations."""

    name: str = "model"
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def build(self, recipe, scorers=None):
        return prompt_rewriter(self, recipe)

    def check(self, pf, recipe, where: str) -> None:
        from detox.rewrite.checks import check_language_model

        check_language_model(pf, self, where)
