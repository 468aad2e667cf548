#!/usr/bin/env bash
# Loss comparisons on real data (issue 3), all-MiniLM-L6-v2, fp32, 2 CPU cores, ~40 min.
#   SciFact (qrels/train -> qrels/test), the same 768 training examples for every run:
#     mnr (random batches, no masking) | mnr + false-negative masking | symmetric mnr + masking
#     | gradient-cached mnr, batch 256 in mini-batches of 32 (+ masking)
#   SNLI triplets (snli_triplets_test, 60 steps x 32), STS-B dev Spearman:
#     triplet (Euclidean, margin 0.5) | triplet (cosine distance, soft margin)
#     | mnr with the contradiction as hard negative
# Base-model figures are the "before" columns of scripts/main_job.sh's runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DATA=${SBERT_TRIPLET_DATA:-../shared/data}
OUT=${OUT:-runs/compare}
ST=.venv/bin/sbert-triplet
SCIFACT=(--train "$DATA/scifact" --train-split train --eval-ir "$DATA/scifact" --eval-split test
         --max-seq-length 256 --lr 2e-5 --seed 42 --no-eval-before --sampler random)

$ST train "${SCIFACT[@]}" --loss mnr --no-mask-false-negatives --batch-size 32 --max-steps 24 --output-dir "$OUT/scifact-mnr"
$ST train "${SCIFACT[@]}" --loss mnr --mask-false-negatives --batch-size 32 --max-steps 24 --output-dir "$OUT/scifact-mnr-masked"
$ST train "${SCIFACT[@]}" --loss mnr-symmetric --mask-false-negatives --batch-size 32 --max-steps 24 --output-dir "$OUT/scifact-mnr-symmetric"
$ST train "${SCIFACT[@]}" --loss mnr --mask-false-negatives --batch-size 256 --mini-batch-size 32 --max-steps 3 --output-dir "$OUT/scifact-mnr-cached-256"

SNLI=(--train "$DATA/snli/snli_triplets_test.jsonl.gz" --eval-sts "$DATA/stsbenchmark/sts-dev.csv"
      --batch-size 32 --max-steps 60 --max-seq-length 64 --lr 2e-5 --seed 42 --no-eval-before)
$ST train "${SNLI[@]}" --loss triplet --distance euclidean --margin 0.5 --output-dir "$OUT/snli-triplet-euclidean"
$ST train "${SNLI[@]}" --loss triplet --distance cosine --soft-margin --output-dir "$OUT/snli-triplet-cosine-soft"
$ST train "${SNLI[@]}" --loss mnr --output-dir "$OUT/snli-mnr-hard-negative"

.venv/bin/python scripts/results_table.py "$OUT"/scifact-* "$OUT"/snli-* | tee "$OUT/results.md"
