"""TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv:2401.06121)
as open-unlearning (locuslab/open-unlearning) evaluates it: forget quality, model utility and
their components, extraction strength and exact memorisation, registered in the same metric
registry as the MUSE metrics (`eval.muse.registry`), so `unlearn eval --benchmark tofu` and
`--metrics` select them like any other metric. See docs/metrics.md."""
