"""The mining report: counts, score statistics (JSON) and a score histogram (PNG)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COUNT_KEYS = (
    "queries", "candidates", "removed_known_positive", "removed_query_text", "removed_duplicate",
    "removed_out_of_range", "removed_false_negative", "short_queries", "rows_written", "rows_dropped_short",
    "rows_dropped_duplicate",
)


def score_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """``count, mean, min, p50, max`` of cosine scores (``None`` for an empty list)."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "mean": None, "min": None, "p50": None, "max": None}
    return {"count": len(ordered), "mean": sum(ordered) / len(ordered), "min": ordered[0],
            "p50": ordered[len(ordered) // 2], "max": ordered[-1]}


def build_report(config: dict[str, Any], counts: dict[str, int], positive: Sequence[float],
                 negative: Sequence[float], files: dict[str, str]) -> dict[str, Any]:
    """``{"config", "counts", "scores": {"positive", "negative"}, "files"}``; counts missing
    from ``counts`` are 0. Scores are dense cosines: one per (query, positive) and one per
    chosen negative."""
    return {
        "config": dict(config),
        "counts": {key: int(counts.get(key, 0)) for key in COUNT_KEYS},
        "scores": {"positive": score_stats(positive), "negative": score_stats(negative)},
        "files": dict(files),
    }


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write ``report`` as indented JSON."""
    path = Path(path)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def plot_scores(positive: Sequence[float], negative: Sequence[float], path: str | Path, bins: int = 40) -> Path:
    """PNG histogram of positive vs chosen-negative cosine scores (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    try:
        edges = [-1.0 + 2.0 * i / bins for i in range(bins + 1)]
        axes.hist(list(positive), bins=edges, alpha=0.6, label=f"positive (n={len(positive)})")
        axes.hist(list(negative), bins=edges, alpha=0.6, label=f"chosen negative (n={len(negative)})")
        axes.set_xlabel("cosine similarity with the query")
        axes.set_ylabel("count")
        axes.set_title("Mined hard negatives vs positives")
        axes.legend()
        figure.tight_layout()
        figure.savefig(Path(path), dpi=100)
    finally:
        plt.close(figure)
    return Path(path)


def summary(report: dict[str, Any]) -> str:
    """A few human-readable lines: the counts and mean positive / negative cosine."""
    counts = report["counts"]
    lines = [f"{key}: {counts[key]}" for key in COUNT_KEYS]
    for side in ("positive", "negative"):
        stats = report["scores"][side]
        mean = "n/a" if stats["mean"] is None else f"{stats['mean']:.4f}"
        lines.append(f"{side} cosine: mean {mean} over {stats['count']}")
    lines.extend(f"{name}: {path}" for name, path in report["files"].items())
    return "\n".join(lines)
