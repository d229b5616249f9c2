"""Detox metrics: STA (toxicity.py), SIM (similarity.py), FL (fluency.py), the joint scores and
reference metrics (joint.py), the scorer registries (registry.py) and the `scorers:` recipe
section (scorers.py). Imports nothing from `detox` or `unlearn`; models load on first use."""
