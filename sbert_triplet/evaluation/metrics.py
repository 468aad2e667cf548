"""Ranking metrics on document ids: pure Python, no torch, trec_eval conventions.

Every metric ranks a query's scored documents with one deterministic rule, trec_eval's:
score descending, ties broken by document id descending (plain string comparison). So
three documents ``d1``, ``d2``, ``d3`` all scored 0.5 rank ``d3, d2, d1`` whatever the
input order. A document is relevant when its qrels grade is > 0; grades are the gains
of nDCG (negative grades count as 0).

Per-query functions take ``ranked`` (document ids, best first, as from :func:`rank`) and
``relevant`` (document id -> grade). :func:`retrieval_metrics` averages them over queries.

Sources: trec_eval (https://github.com/usnistgov/trec_eval, measures ``ndcg_cut``,
``recip_rank``, ``recall``, ``P``, ``map_cut``); Järvelin & Kekäläinen (2002),
"Cumulated gain-based evaluation of IR techniques", ACM TOIS 20(4) for nDCG.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

METRIC_NAMES = ("ndcg", "mrr", "recall", "precision", "map")


def rank(scores: Mapping[str, float]) -> list[str]:
    """Document ids sorted by score descending, ties by document id descending (trec_eval).

    Args:
        scores: document id -> score (any unit where larger means better, e.g. cosine
            similarity).

    Raises:
        ValueError: a score is NaN (it has no place in an ordering).
    """
    items = [(float(score), str(doc_id)) for doc_id, score in scores.items()]
    for score, doc_id in items:
        if math.isnan(score):
            raise ValueError(f"score of document {doc_id!r} is NaN; scores must be numbers")
    items.sort(reverse=True)  # (score desc, doc id desc)
    return [doc_id for _, doc_id in items]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _num_relevant(relevant: Mapping[str, int]) -> int:
    return sum(1 for grade in relevant.values() if grade > 0)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """nDCG@k with graded gains (Järvelin & Kekäläinen 2002; trec_eval ``ndcg_cut``).

    DCG@k = sum over ranks r <= k of grade(doc_r) / log2(r + 1); the ideal DCG ranks the
    qrels grades in descending order. Returns 0.0 when no document is relevant.
    """
    _check_k(k)
    dcg = sum(
        max(relevant.get(doc_id, 0), 0) / math.log2(r + 1)
        for r, doc_id in enumerate(ranked[:k], start=1)
    )
    ideal_grades = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(r + 1) for r, g in enumerate(ideal_grades, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top ``k``, else 0.0."""
    _check_k(k)
    for r, doc_id in enumerate(ranked[:k], start=1):
        if relevant.get(doc_id, 0) > 0:
            return 1.0 / r
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Relevant documents in the top ``k`` / all relevant documents (0.0 if there are none)."""
    _check_k(k)
    n_rel = _num_relevant(relevant)
    if n_rel == 0:
        return 0.0
    return sum(1 for doc_id in ranked[:k] if relevant.get(doc_id, 0) > 0) / n_rel


def precision_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Relevant documents in the top ``k`` / ``k`` (trec_eval ``P_k``: divides by k even
    when fewer than k documents were retrieved)."""
    _check_k(k)
    return sum(1 for doc_id in ranked[:k] if relevant.get(doc_id, 0) > 0) / k


def average_precision_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """AP@k as trec_eval ``map_cut``: the sum of precision@r over the ranks r <= k that
    hold a relevant document, divided by the number of relevant documents (not by k)."""
    _check_k(k)
    n_rel = _num_relevant(relevant)
    if n_rel == 0:
        return 0.0
    hits, total = 0, 0.0
    for r, doc_id in enumerate(ranked[:k], start=1):
        if relevant.get(doc_id, 0) > 0:
            hits += 1
            total += hits / r
    return total / n_rel


_PER_QUERY = {
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "map": average_precision_at_k,
}


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """Validate metric cutoffs; return them sorted and deduplicated.

    Raises:
        ValueError: ``ks`` is empty or holds something other than a positive integer.
    """
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one cutoff, e.g. ks=(10, 100)")
    for k in ks:
        _check_k(k)
    return tuple(sorted(set(ks)))


def per_query_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Iterable[int] = (10, 100),
) -> dict[str, dict[str, float]]:
    """Every metric at every cutoff for each query of ``qrels`` (as trec_eval ``-q -c``).

    A query with no relevant document (every grade <= 0) scores 0.0 everywhere, as in
    trec_eval; a query absent from ``run`` scores 0.0 everywhere. Keys as in
    :func:`retrieval_metrics`.

    Raises:
        ValueError: bad ``ks``, or a NaN score.
    """
    ks = check_ks(ks)
    out = {}
    for qid, rel in qrels.items():
        ranked = rank(run.get(qid, {}))
        out[qid] = {f"{name}@{k}": fn(ranked, rel, k) for name, fn in _PER_QUERY.items() for k in ks}
    return out


def retrieval_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Iterable[int] = (10, 100),
) -> dict[str, float]:
    """Mean nDCG, MRR, Recall, Precision and MAP at each cutoff in ``ks``.

    Args:
        run: query id -> {document id: score}, larger score = better (e.g. cosine
            similarity). Documents are ranked with :func:`rank`.
        qrels: query id -> {document id: grade}; grade > 0 means relevant.
        ks: cutoffs; every metric is reported at every cutoff.

    Returns:
        Plain floats keyed ``"ndcg@10"``, ``"mrr@10"``, ``"recall@10"``, ``"precision@10"``,
        ``"map@10"`` and so on for each k. The mean is over the queries in ``qrels`` with at
        least one relevant document; such a query absent from ``run`` scores 0 everywhere
        (trec_eval ``-c``). Queries without a relevant document are left out of the mean
        (trec_eval would average their 0.0 in; every per-query value equals trec_eval's,
        see :func:`per_query_metrics`). Queries in ``run`` but not in ``qrels`` are ignored
        (as trec_eval does).

    Raises:
        ValueError: ``ks`` is empty or holds a non-positive k; no query in ``qrels`` has a
            relevant document; a score is NaN.
    """
    ks = check_ks(ks)
    judged = {qid: rel for qid, rel in qrels.items() if _num_relevant(rel) > 0}
    if not judged:
        raise ValueError(
            "no query in qrels has a relevant document (grade > 0); nothing to evaluate"
        )
    per_query = per_query_metrics(run, judged, ks)
    keys = [f"{name}@{k}" for name in METRIC_NAMES for k in ks]
    return {key: float(sum(q[key] for q in per_query.values()) / len(judged)) for key in keys}
