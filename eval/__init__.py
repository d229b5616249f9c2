"""Lethe's evaluation: MUSE six-way metrics, extraction attacks, detox metrics.

Never imports `unlearn` or `detox` (a test checks), and never `import eval` bare elsewhere:
use `from eval import ...` / `from eval.muse import ...`.
"""
