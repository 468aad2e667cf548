#!/usr/bin/env bash
# Set-up (if needed), then the whole test suite: fast unit tests on a tiny random BERT
# and a few tests marked `real` on all-MiniLM-L6-v2 and ../shared/data.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not real"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
