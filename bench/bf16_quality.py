"""Is bf16 autocast safe for quality? Our training in fp32 and in bf16, same seed, same batches.

Run by hand with nothing else running (about 10-15 min on 2 cores):

    python bench/bf16_quality.py --out bench/results/train_bf16_quality.json

Two settings, each trained one epoch in fp32 and in bf16 (``sbert-triplet train``, one
process per run):

- MNR on the 3,223 SNLI test triplets, batch 32, 64 tokens -> STS-B dev Spearman;
- MNR on the 919 SciFact train pairs, batch 32, 256 tokens -> SciFact test nDCG@10 (and STS-B dev).

bf16 may become the default only where every metric is within 0.3 points of fp32
(issue 7). Each run's evaluation runs at its training precision (Accelerate keeps its
autocast wrapper on the model). ``--seeds 42 43`` repeats each run per seed,
to see how much a metric moves with the seed alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SBERT_TRIPLET_DATA", HERE.parent.parent / "shared" / "data"))
STS_DEV = str(DATA / "stsbenchmark" / "sts-dev.csv")
SETTINGS = {
    "snli_mnr": ["--train", str(DATA / "snli" / "snli_triplets_test.jsonl.gz"), "--max-seq-length", "64",
                 "--eval-sts", STS_DEV],
    "scifact_mnr": ["--train", str(DATA / "scifact"), "--max-seq-length", "256", "--eval-ir", str(DATA / "scifact"),
                    "--eval-sts", STS_DEV],
}


def run(name: str, bf16: bool, seed: int, out_root: Path) -> dict:
    out = out_root / f"{name}_{'bf16' if bf16 else 'fp32'}_seed{seed}"
    cmd = [sys.executable, "-m", "sbert_triplet.cli", "train", *SETTINGS[name], "--loss", "mnr", "--batch-size", "32",
           "--epochs", "1", "--seed", str(seed), "--no-eval-before", "--bf16" if bf16 else "--no-bf16",
           "--output-dir", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())
    after = {k: 100 * v for k, v in metrics["after"].items() if k.endswith(("spearman_cosine", "ndcg@10"))}
    return {"setting": name, "precision": "bf16" if bf16 else "fp32", "seed": seed, "metrics": after,
            "examples_per_s": metrics["train"]["examples_per_s"], "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results" / "train_bf16_quality.json"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--runs-dir", default="/tmp/bf16_quality_runs")
    args = parser.parse_args()
    results = [run(name, bf16, seed, Path(args.runs_dir)) for name in SETTINGS for seed in args.seeds
               for bf16 in (False, True)]
    lines = ["| setting | seed | metric | fp32 | bf16 | bf16 - fp32 |", "|---|---|---|---|---|---|"]
    for name in SETTINGS:
        for seed in args.seeds:
            fp32, bf16 = (next(r for r in results if r["setting"] == name and r["seed"] == seed and r["precision"] == p)
                          for p in ("fp32", "bf16"))
            for metric, value in fp32["metrics"].items():
                lines.append(f"| {name} | {seed} | {metric} | {value:.2f} | {bf16['metrics'][metric]:.2f} | "
                             f"{bf16['metrics'][metric] - value:+.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python " + shlex.join(sys.argv), "runs": results}, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
