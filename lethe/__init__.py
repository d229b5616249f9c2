"""Lethe core: the one model adapter (lm.py) and logit lens (lens.py), errors, recipes and
registries, loading, the shared trainer, DeepSpeed, report writing, preflight, outputs, locks.

These modules import only third-party libraries (torch, transformers, peft, yaml), never
`unlearn`, `detox` or `eval`, so every side of Lethe can build on them without cycles.
"""

__version__ = "0.1.0"
