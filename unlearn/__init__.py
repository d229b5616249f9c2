"""Lethe's unlearning side: the benchmark world, model preparation, unlearning methods, edits."""
