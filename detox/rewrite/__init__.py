"""Rewriting offensive text (`detox rewrite`): the recipe (recipe.py), prompts (prompts.py), the
shared language model and prompting (rewriters.py), and one module per rewriter (fewshot.py,
model.py, best_of_n.py), each registering its config where it is defined. Never imports
`detox.train`."""
