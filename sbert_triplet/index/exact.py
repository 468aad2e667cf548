"""Exact (brute-force) top-k search over a corpus of embeddings: the reference index.

The corpus is scanned in chunks so at most a ``(Q, corpus_chunk_size)`` score matrix is
held at once; the top-k of each chunk is merged into a running top-k. The result is the
top-k of the full ``(Q, N)`` score matrix under one deterministic order: score
descending, ties broken by corpus row ascending, whatever the chunk size.

An all-zero corpus vector has no direction: it scores ``-inf`` for every query (cosine
and dot), so it ranks last and never produces NaN. An all-zero *query* scores 0.0
against every non-zero document.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from sbert_triplet.similarity import dot_score, normalize

SCORES = ("cosine", "dot")


def check_top_k(top_k: int) -> None:
    """Raise ``ValueError`` unless ``top_k`` is a positive integer."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")


def check_score(score: str) -> None:
    """Raise ``ValueError`` unless ``score`` is ``"cosine"`` or ``"dot"``."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {list(SCORES)}")


def _check_inputs(
    query_embeddings: Tensor, corpus_embeddings: Tensor, top_k: int, score: str, chunk: int
) -> None:
    if query_embeddings.dim() != 2 or corpus_embeddings.dim() != 2:
        raise ValueError(
            "exact_search expects 2-D embeddings, query (Q, D) and corpus (N, D); got shapes "
            f"{tuple(query_embeddings.shape)} and {tuple(corpus_embeddings.shape)}"
        )
    if query_embeddings.shape[1] != corpus_embeddings.shape[1]:
        raise ValueError(
            f"query and corpus embeddings differ in dimension: {query_embeddings.shape[1]} vs "
            f"{corpus_embeddings.shape[1]}; encode both with the same model"
        )
    check_top_k(top_k)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"corpus_chunk_size must be a positive integer, got {chunk!r}")
    check_score(score)


def _chunk_scores(queries: Tensor, chunk: Tensor, score: str) -> Tensor:
    """Scores of queries ``(Q, D)`` against one chunk ``(C, D)``; zero rows get ``-inf``."""
    zero_rows = ~chunk.ne(0).any(dim=1)  # (C,) bool
    if score == "cosine":
        chunk = normalize(chunk)  # (C, D)
    scores = dot_score(queries, chunk)  # (Q, C)
    return scores.masked_fill(zero_rows.unsqueeze(0), float("-inf"))  # (Q, C)


def _stable_topk(scores: Tensor, k: int) -> Tensor:
    """Column indices of the ``k`` best entries per row, by score desc then column asc.

    ``torch.topk`` picks arbitrarily among ties at the k-th place; here the tied columns
    with the smallest index are kept, so the chosen set never depends on the backend.
    """
    kth = scores.topk(k, dim=1).values[:, -1:]  # (Q, 1)
    above = scores > kth  # (Q, C)
    tied = scores == kth  # (Q, C)
    room = k - above.sum(dim=1, keepdim=True)  # (Q, 1) tied entries still wanted
    if torch.equal(tied.sum(dim=1, keepdim=True), room):  # the usual case: no tie straddles the cut
        keep = above | tied  # (Q, C)
    else:
        keep = above | (tied & (tied.cumsum(dim=1) <= room))  # (Q, C), exactly k per row
    cols = keep.nonzero()[:, 1].view(scores.shape[0], k)  # (Q, k) ascending columns
    order = scores.gather(1, cols).sort(dim=1, descending=True, stable=True).indices  # (Q, k)
    return cols.gather(1, order)  # (Q, k)


def topk_over_chunks(
    queries: Tensor, chunks: Iterable[tuple[int, Tensor]], top_k: int, score: str
) -> tuple[Tensor, Tensor]:
    """Running top-k over ``(start_row, chunk (C, D))`` pairs given in ascending row order.

    ``queries (Q, D)`` must already be normalised for ``score="cosine"``; chunks are
    moved to the queries' device and dtype. Returns ``scores (Q, k)``, ``rows (Q, k)``
    with ``k = min(top_k, rows seen)``, best first, ties by row ascending.
    """
    n_queries = queries.shape[0]
    best_scores = queries.new_empty((n_queries, 0))  # (Q, 0)
    best_rows = torch.empty((n_queries, 0), dtype=torch.long, device=queries.device)  # (Q, 0)
    for start, chunk in chunks:
        chunk = torch.as_tensor(chunk).to(queries.device, queries.dtype)  # (C, D)
        if chunk.shape[0] == 0:
            continue
        scores = _chunk_scores(queries, chunk, score)  # (Q, C)
        cols = _stable_topk(scores, min(top_k, chunk.shape[0]))  # (Q, k_c)
        merged_scores = torch.cat([best_scores, scores.gather(1, cols)], dim=1)  # (Q, k' + k_c)
        merged_rows = torch.cat([best_rows, cols + start], dim=1)  # (Q, k' + k_c)
        # earlier rows come first and each part is sorted, so a stable sort keeps row order on ties
        order = merged_scores.sort(dim=1, descending=True, stable=True).indices[:, :top_k]  # (Q, k)
        best_scores = merged_scores.gather(1, order)  # (Q, k)
        best_rows = merged_rows.gather(1, order)  # (Q, k)
    return best_scores, best_rows


def prepare_queries(query_embeddings, score: str, dtype: torch.dtype | None = None) -> Tensor:
    """Queries as a floating ``(Q, D)`` tensor, L2-normalised when ``score == "cosine"``."""
    queries = torch.as_tensor(query_embeddings)
    target = dtype if dtype is not None else queries.dtype
    target = target if target.is_floating_point else torch.float32
    queries = queries.to(target)
    return normalize(queries) if score == "cosine" else queries  # (Q, D)


@torch.no_grad()
def exact_search(
    query_embeddings: Tensor,
    corpus_embeddings: Tensor,
    top_k: int,
    score: str = "cosine",
    corpus_chunk_size: int = 50_000,
) -> tuple[Tensor, Tensor]:
    """The ``k = min(top_k, N)`` best corpus rows for every query, best first.

    Args:
        query_embeddings: ``(Q, D)`` tensor (or array-like).
        corpus_embeddings: ``(N, D)``; chunks are moved to the queries' device.
        top_k: number of hits wanted per query (>= 1); fewer are returned when N < top_k.
        score: ``"cosine"`` — cosine similarity in [-1, 1]; or ``"dot"`` — raw inner
            product. Both are similarities: larger = closer. An all-zero corpus row
            scores ``-inf`` (ranks last, never NaN); an all-zero query scores 0.0.
        corpus_chunk_size: corpus rows scored at once; bounds memory to ``Q x chunk``.

    Returns:
        ``scores (Q, k)`` float, descending along each row, and ``indices (Q, k)`` int64
        row indices into ``corpus_embeddings``. Ties are broken by row ascending, so the
        result does not depend on ``corpus_chunk_size``.

    Raises:
        ValueError: inputs are not 2-D, dimensions differ, ``top_k`` or
            ``corpus_chunk_size`` < 1, or ``score`` is unknown.
    """
    queries = torch.as_tensor(query_embeddings)
    corpus = torch.as_tensor(corpus_embeddings)
    _check_inputs(queries, corpus, top_k, score, corpus_chunk_size)
    queries = prepare_queries(queries, score, torch.promote_types(queries.dtype, corpus.dtype))  # (Q, D)
    chunks = (
        (start, corpus[start : start + corpus_chunk_size])  # (C, D)
        for start in range(0, corpus.shape[0], corpus_chunk_size)
    )
    return topk_over_chunks(queries, chunks, top_k, score)
