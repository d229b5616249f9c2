"""`python -m unlearn ...` (what `accelerate launch -m unlearn run RECIPE` executes)."""

from unlearn.cli import main

main()
