"""Mining end to end: read the data, mine, write the triplets, the report and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sbert_triplet.mining.config import MiningConfig
from sbert_triplet.mining.inputs import load_mining_input
from sbert_triplet.mining.pipeline import mine_hard_negatives
from sbert_triplet.mining.report import build_report, plot_scores, write_report
from sbert_triplet.mining.write import sidecar_path, triplet_rows, unique_rows, write_jsonl


def run_mining(model: Any, data: str | Path, output: str | Path, config: MiningConfig,
               split: str = "train", columns: str | None = None) -> dict[str, Any]:
    """Mine hard negatives for ``data`` and write three files.

    Args:
        model: SentenceTransformer-like encoder (cosine similarity of its embeddings).
        data: a BEIR folder (qrels ``split``) or a pairs / triplets file (``columns``).
        output: the JSONL (``.jsonl`` or ``.jsonl.gz``) of ``anchor, positive,
            negative_1..K``; next to it ``<stem>.report.json`` and ``<stem>.scores.png``.
        config: :class:`MiningConfig`.

    Returns:
        The report (see :func:`sbert_triplet.mining.report.build_report`).

    Raises:
        DataSchemaError: unreadable data; ConfigError: bad ``config``.
    """
    mining_input = load_mining_input(data, split=split, columns=columns)
    result = mine_hard_negatives(model, mining_input, config)
    rows, dropped = triplet_rows(result, mining_input.corpus, config.num_negatives)
    rows, repeated = unique_rows(rows)
    out = write_jsonl(rows, output)
    counts = dict(result.counts, rows_written=len(rows), rows_dropped_short=dropped, rows_dropped_duplicate=repeated)
    positive = [s for q in result.queries for s in q.positive_scores]
    negative = [s for q in result.queries for s in q.negative_scores]
    plot = plot_scores(positive, negative, sidecar_path(out, ".scores.png"))
    report_path = sidecar_path(out, ".report.json")
    files = {"triplets": str(out), "report": str(report_path), "histogram": str(plot)}
    report = build_report({**config.to_dict(), "data": str(data), "split": split}, counts, positive, negative, files)
    write_report(report, report_path)
    return report
