"""Training rewriters and their reward model (`detox train`, `detox train-classifier`): the
recipes (recipe.py), the policy shared by RL and SFT (policy.py), the algorithms registry
(algorithms.py) with GRPO/RLOO (rl.py, rl_report.py, sweep.py) and SFT (sft.py), the reward
callables (rewards.py) and the appropriateness classifier (classifier.py); runner.py is what
the command calls."""
