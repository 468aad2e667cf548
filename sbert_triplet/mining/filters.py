"""Step 3 of mining: keep only candidates that are plausible *true* negatives.

Applied per query, in this order, each removal counted in ``counts`` (a ``Counter``):

1. :func:`exclude_known` — a known positive (same document row, or identical text to a
   positive: ``removed_known_positive``), the query text itself (``removed_query_text``),
   a repeat of an earlier candidate (same row or identical text: ``removed_duplicate``);
2. :func:`rank_window` — ranks are 0-based and counted *after* step 1 within each
   retriever's list; ``range_min <= rank < range_max`` is kept (``removed_out_of_range``);
3. :func:`merge_sources` — dense survivors in dense order, then BM25 survivors not already
   there (by row or text) in BM25 order; repeats count as ``removed_duplicate``;
4. :func:`drop_false_negatives` — positive-aware false-negative removal of NV-Retriever
   (Moreira et al. 2024, arXiv:2407.15831): with the *minimum* cosine of the query's
   positives ``s_pos`` (the strictest choice when a query has several), a candidate with
   dense cosine ``s > max_score_ratio * s_pos`` ("TopK-PercPos") or ``s > s_pos - margin``
   ("TopK-MarginPos") is dropped (``removed_false_negative``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Optional


def exclude_known(
    rows: Sequence[int], positives: Collection[int], query_text: Optional[str], corpus: Sequence[str], counts: Counter
) -> list[int]:
    """``rows`` without known positives, the query text and repeats (order kept; see module)."""
    positive_texts = {corpus[p] for p in positives}
    seen_rows: set[int] = set()
    seen_texts: set[str] = set()
    kept: list[int] = []
    for row in rows:
        text = corpus[row]
        if row in positives or text in positive_texts:
            counts["removed_known_positive"] += 1
        elif query_text is not None and text == query_text:
            counts["removed_query_text"] += 1
        elif row in seen_rows or text in seen_texts:
            counts["removed_duplicate"] += 1
        else:
            kept.append(row)
            seen_rows.add(row)
            seen_texts.add(text)
    return kept


def rank_window(rows: Sequence[int], range_min: int, range_max: int, counts: Counter) -> list[int]:
    """The rows of 0-based rank ``range_min <= rank < range_max``; the others are counted."""
    kept = list(rows[range_min:range_max])
    counts["removed_out_of_range"] += len(rows) - len(kept)
    return kept


def merge_sources(dense: Sequence[int], bm25: Sequence[int], corpus: Sequence[str], counts: Counter) -> list[int]:
    """Dense candidates in dense-rank order, then BM25-only ones in BM25-rank order; a
    document found by both (same row or identical text) keeps its dense place."""
    return exclude_known([*dense, *bm25], (), None, corpus, counts)


def false_negative_threshold(
    positive_score: float, max_score_ratio: Optional[float], margin: Optional[float]
) -> Optional[float]:
    """Highest cosine a negative may have: ``ratio * s_pos`` or ``s_pos - margin``; ``None``
    (no limit) when neither rule is set. ``s_pos`` is the minimum positive cosine.

    Raises:
        ValueError: both rules given.
    """
    if max_score_ratio is not None and margin is not None:
        raise ValueError("give either max_score_ratio or margin, not both")
    if max_score_ratio is not None:
        return max_score_ratio * positive_score
    if margin is not None:
        return positive_score - margin
    return None


def drop_false_negatives(
    rows: Sequence[int], scores: Sequence[float], threshold: Optional[float], counts: Counter
) -> tuple[list[int], list[float]]:
    """Keep ``(row, score)`` with ``score <= threshold`` (all when ``threshold`` is None)."""
    kept = [(r, s) for r, s in zip(rows, scores, strict=True) if threshold is None or s <= threshold]
    counts["removed_false_negative"] += len(rows) - len(kept)
    return [r for r, _ in kept], [s for _, s in kept]
