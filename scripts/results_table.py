"""Print a markdown table (before -> after) of the key metrics in the metrics.json of training runs.

Usage: python scripts/results_table.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


KEY_METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@100", "spearman_cosine", "accuracy")


def rows(run_dir: Path):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "train_config.json").read_text())
    loss = config["loss"]["loss"]
    train = metrics["train"]
    for key, after in metrics["after"].items():
        if key.split("/")[-1] not in KEY_METRICS:
            continue
        before = metrics["before"].get(key)
        shown = ("-", "-") if before is None else (f"{before:.4f}", f"{after - before:+.4f}")
        yield (run_dir.name, loss, train["steps"], train["examples"], train["train_runtime_s"], key,
               shown[0], f"{after:.4f}", shown[1])


def main(argv: list[str]) -> None:
    print("| run | loss | steps | examples | train s | metric | before | after | change |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arg in argv:
        for row in rows(Path(arg)):
            print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
