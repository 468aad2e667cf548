#!/usr/bin/env bash
# Issue 4 comparison on SciFact: MNR (a) in-batch negatives only, (b) + 1 dense hard negative
# without the false-negative filter, (c) + 1 dense hard negative with the 95% positive-aware
# filter, (d) + 1 BM25 hard negative with the 95% filter. Mines with the base model (skipped
# when the file exists), trains with configs/scifact_mnr.yaml, evaluates on qrels/test.
# Usage: bash scripts/mined_negatives.sh [SEED]   (about 45 min on 2 cores; results in runs/mined-seed<SEED>/)
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${1:-42}"
DATA="${SBERT_TRIPLET_DATA:-../shared/data}/scifact"
BIN=.venv/bin/sbert-triplet
LOCK="flock /tmp/sbert_heavy.lock"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p runs/mined
mine() {  # name, extra options
  local out="runs/mined/$1.jsonl"; shift
  [ -s "$out" ] || $LOCK "$BIN" mine --data "$DATA" --split train --range-max 50 --num-negatives 1 --output "$out" "$@"
}
mine scifact_dense_nofilter --candidates dense --no-false-negative-filter
mine scifact_dense_ratio95 --candidates dense
mine scifact_bm25_ratio95 --candidates bm25
OUT="runs/mined-seed$SEED"
train() {  # name, training data
  [ -s "$OUT/$1/metrics.json" ] || $LOCK "$BIN" train --config configs/scifact_mnr.yaml --train "$2" --seed "$SEED" \
    --eval-ir "$DATA" --no-eval-before --output-dir "$OUT/$1" > /dev/null
}
train a-in-batch "$DATA"
train b-dense-nofilter runs/mined/scifact_dense_nofilter.jsonl
train c-dense-filtered95 runs/mined/scifact_dense_ratio95.jsonl
train d-bm25-filtered95 runs/mined/scifact_bm25_ratio95.jsonl
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| run | training rows | nDCG@10 | MRR@10 | Recall@10 | Recall@100 |\n|---|---|---|---|---|---|")
for run in sorted(p for p in out.iterdir() if (p / "metrics.json").is_file()):
    m = json.loads((run / "metrics.json").read_text())
    a = {k.split("/")[-1]: v for k, v in m["after"].items()}
    print(f"| {run.name} | {m['data']['rows']} | {a['ndcg@10']:.4f} | {a['mrr@10']:.4f} | {a['recall@10']:.4f} | {a['recall@100']:.4f} |")
PY
