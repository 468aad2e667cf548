"""Retrieval evaluation: encode queries and corpus, exact cosine top-k, trec_eval metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sbert_triplet.data.types import RetrievalSet
from sbert_triplet.evaluation.metrics import check_ks, retrieval_metrics
from sbert_triplet.evaluation.sts import encode_unique
from sbert_triplet.index.exact import exact_search


def evaluate_retrieval(
    model: Any,
    rset: RetrievalSet,
    ks: Iterable[int] = (10, 100),
    batch_size: int = 32,
    show_progress_bar: bool = False,
) -> dict[str, float]:
    """nDCG@k, MRR@k, Recall@k, Precision@k and MAP@k of ``model`` on a retrieval set.

    Queries and corpus are encoded once each (``title + " " + text`` is the adapter's
    job), every query is searched exactly over the whole corpus by cosine similarity with
    ``top_k = max(ks)``, and the run (query id -> {document id: cosine similarity}) is
    scored by :func:`~sbert_triplet.evaluation.metrics.retrieval_metrics` (trec_eval
    conventions: ties broken by document id descending; a judged query whose text is
    missing from ``rset.queries`` scores 0).

    Args:
        model: anything with a SentenceTransformer-like ``encode``.
        rset: queries, corpus (encoded in ``rset.corpus_ids`` order) and graded qrels.
        ks: metric cutoffs, e.g. ``(10, 100)``.
        batch_size, show_progress_bar: passed to ``model.encode``.

    Returns:
        Plain floats keyed ``"ndcg@10"``, ``"mrr@10"``, ``"recall@10"``, ``"recall@100"``,
        ``"precision@10"``, ``"map@100"``, ... (every metric at every k).

    Raises:
        ValueError: empty queries or corpus, a bad ``ks``, or no query with a relevant
            document.
    """
    ks = check_ks(ks)
    if not rset.queries or not rset.corpus_ids:
        raise ValueError(
            f"retrieval set {rset.name!r} needs at least one query and one document; got "
            f"{len(rset.queries)} queries and {len(rset.corpus_ids)} documents"
        )
    query_ids = list(rset.queries)
    corpus_ids = list(rset.corpus_ids)
    encode = dict(batch_size=batch_size, show_progress_bar=show_progress_bar)
    q_emb, q_rows = encode_unique(model, [rset.queries[q] for q in query_ids], **encode)
    c_emb, c_rows = encode_unique(model, [rset.corpus[d] for d in corpus_ids], **encode)
    q_emb = q_emb[q_rows]  # (Q, D)
    c_emb = c_emb[c_rows]  # (N, D)
    scores, indices = exact_search(q_emb, c_emb, top_k=max(ks), score="cosine")  # (Q, k) each
    run = {
        qid: {corpus_ids[j]: s for j, s in zip(idx_row, score_row)}
        for qid, idx_row, score_row in zip(query_ids, indices.tolist(), scores.tolist())
    }
    return retrieval_metrics(run, rset.relevant, ks)
