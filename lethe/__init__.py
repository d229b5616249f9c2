"""Lethe core: errors, recipes, loading, the shared trainer and report writing.

These modules import only third-party libraries (torch, transformers, peft, yaml), never
`unlearn`, `detox` or `eval`, so every side of Lethe can build on them without cycles.
"""

__version__ = "0.1.0"
