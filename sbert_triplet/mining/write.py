"""Step 5 of mining: the training file (JSONL the ``train`` command reads directly)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from sbert_triplet.mining.pipeline import MiningResult


def triplet_rows(result: MiningResult, corpus: Sequence[str], num_negatives: int) -> tuple[list[dict], int]:
    """One row per (query, positive): ``anchor, positive, negative_1 .. negative_K``.

    :func:`sbert_triplet.data.load_triplets` needs the same columns in every row, so a
    query with fewer than K negatives contributes no row (its rows are counted instead).
    A row identical to one already written (two query ids with the same text and the same
    positive, as in SciFact train) is written once: see :func:`unique_rows`.

    Returns:
        ``(rows, rows_dropped_short)``.
    """
    rows, dropped = [], 0
    for query in result.queries:
        if len(query.negatives) < num_negatives:
            dropped += len(query.positives)
            continue
        negatives = {f"negative_{j}": corpus[r] for j, r in enumerate(query.negatives, start=1)}
        rows.extend({"anchor": query.text, "positive": corpus[p], **negatives} for p in query.positives)
    return rows, dropped


def unique_rows(rows: Sequence[dict]) -> tuple[list[dict], int]:
    """``rows`` without exact repeats (first one kept), and how many were removed.

    The train command rejects duplicate rows, so the mined file must not contain any.
    """
    seen: set[tuple] = set()
    kept = []
    for row in rows:
        key = tuple(row.values())
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept, len(rows) - len(kept)


def write_jsonl(rows: Sequence[dict], path: str | Path) -> Path:
    """Write ``rows`` as JSON lines (gzip when ``path`` ends in ``.gz``); parent folders are made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def sidecar_path(output: str | Path, suffix: str) -> Path:
    """``runs/x.jsonl[.gz]`` -> ``runs/x<suffix>`` (e.g. ``.report.json``, ``.scores.png``)."""
    output = Path(output)
    name = output.name
    for ending in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(ending)
    return output.with_name(name + suffix)
