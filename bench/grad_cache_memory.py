"""Peak memory and throughput of gradient-cached MNR vs plain MNR, on the real MiniLM.

Run by hand, never in CI, with nothing else running (two torch processes on 2 cores
slow each other 10-100x):

    .venv/bin/python bench/grad_cache_memory.py            # all three settings, ~5 min
    .venv/bin/python bench/grad_cache_memory.py --one --batch-size 512 --mini-batch-size 32

Each setting runs in its own process (so its peak RSS, ``ru_maxrss``, is its own):
all-MiniLM-L6-v2, MNR with in-batch negatives on SNLI (anchor, entailment) pairs from
``snli_triplets_test.jsonl.gz``, 64 tokens max, fp32, ``--steps`` optimizer steps after
one warm-up step. Settings: plain batch 32, gradient-cached batch 512 in mini-batches
of 32, plain batch 512. Writes ``bench/results/grad_cache_memory.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SBERT_TRIPLET_DATA", HERE.parent.parent / "shared" / "data"))
SETTINGS = [(32, None), (512, 32), (512, None)]


def run_one(batch_size: int, mini_batch_size: int | None, steps: int) -> dict:
    """Train ``1 + steps`` steps in this process; return throughput and peak RSS."""
    import datasets
    import torch

    from sbert_triplet.config import build_train_config
    from sbert_triplet.data import load_triplets
    from sbert_triplet.models import load_model
    from sbert_triplet.training.loop import train

    torch.manual_seed(0)
    pairs, _ = load_triplets(str(DATA / "snli" / "snli_triplets_test.jsonl.gz"))
    pairs = pairs.select_columns(["anchor", "positive"])  # one (anchor, entailment) pair per row
    need = batch_size * (steps + 1)
    rows = datasets.concatenate_datasets([pairs] * (need // len(pairs) + 1)).select(range(need))
    values = {"train": "in-memory", "output_dir": f"/tmp/bench_gc_{batch_size}_{mini_batch_size}",
              "loss": "mnr", "sampler": "random", "mask_false_negatives": False, "batch_size": batch_size,
              "max_seq_length": 64, "log_steps": 1, "eval_before": False}
    if mini_batch_size:
        values["mini_batch_size"] = mini_batch_size
    model = load_model(None, max_seq_length=64)
    start = time.perf_counter()
    metrics = train(build_train_config({**values, "max_steps": steps + 1}), model=model, train_dataset=rows,
                    evaluators=[])
    log = [json.loads(x) for x in (Path(values["output_dir"]) / "train_log.jsonl").read_text().splitlines()]
    timed = [r for r in log if r["event"] == "train"]
    first, last = timed[0], timed[-1]  # step 1 is the warm-up
    per_s = (last["examples"] - first["examples"]) / (last["elapsed_s"] - first["elapsed_s"])
    return {"batch_size": batch_size, "mini_batch_size": mini_batch_size, "steps_timed": steps,
            "examples_per_s": round(per_s, 2), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "final_loss": metrics["train"]["final_loss"], "wall_s": round(time.perf_counter() - start, 1),
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", action="store_true", help="run one setting in this process")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mini-batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.batch_size, args.mini_batch_size, args.steps)))
        return
    results = []
    for batch_size, mini in SETTINGS:
        cmd = [sys.executable, __file__, "--one", "--batch-size", str(batch_size), "--steps", str(args.steps)]
        if mini:
            cmd += ["--mini-batch-size", str(mini)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = out.stdout.strip().splitlines()[-1] if out.returncode == 0 else None
        results.append(json.loads(line) if line else {"batch_size": batch_size, "mini_batch_size": mini,
                                                      "error": out.stderr.strip().splitlines()[-1:]})
        print(results[-1], flush=True)
    write(results)


def write(results: list[dict]) -> None:
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "grad_cache_memory.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| setting | examples/s | peak RSS (MB) |", "|---|---|---|"]
    for r in results:
        name = f"batch {r['batch_size']}" + (f", mini-batch {r['mini_batch_size']} (gradient cache)"
                                              if r.get("mini_batch_size") else " (plain)")
        lines.append(f"| {name} | {r.get('examples_per_s', 'error')} | {r.get('peak_rss_mb', 'error')} |")
    (out / "grad_cache_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
