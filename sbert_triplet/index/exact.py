"""Exact (brute-force) top-k search over a corpus of embeddings: the reference index.

The corpus is scanned in chunks so at most a ``(Q, corpus_chunk_size)`` score matrix is
held at once; the top-k of each chunk is merged into a running top-k. Results equal a
top-k over the full ``(Q, N)`` score matrix (up to the order of tied scores).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sbert_triplet.similarity import dot_score, normalize

SCORES = ("cosine", "dot")


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
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"corpus_chunk_size must be a positive integer, got {chunk!r}")
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {list(SCORES)}")


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
        score: ``"cosine"`` — cosine similarity in [-1, 1], a zero vector scores 0.0 against
            everything (never NaN); or ``"dot"`` — raw inner product. Both are
            similarities: larger = closer.
        corpus_chunk_size: corpus rows scored at once; bounds memory to ``Q x chunk``.

    Returns:
        ``scores (Q, k)`` float, descending along each row, and ``indices (Q, k)`` int64
        row indices into ``corpus_embeddings``. Order among tied scores is unspecified.

    Raises:
        ValueError: inputs are not 2-D, dimensions differ, ``top_k`` or
            ``corpus_chunk_size`` < 1, or ``score`` is unknown.
    """
    queries = torch.as_tensor(query_embeddings)
    corpus = torch.as_tensor(corpus_embeddings)
    _check_inputs(queries, corpus, top_k, score, corpus_chunk_size)
    dtype = torch.promote_types(queries.dtype, corpus.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float32
    queries = queries.to(dtype)
    if score == "cosine":
        queries = normalize(queries)  # (Q, D)
    n_queries, n_corpus = queries.shape[0], corpus.shape[0]
    k = min(top_k, n_corpus)
    best_scores = queries.new_empty((n_queries, 0))  # (Q, 0)
    best_indices = torch.empty((n_queries, 0), dtype=torch.long, device=queries.device)  # (Q, 0)
    for start in range(0, n_corpus, corpus_chunk_size):
        chunk = corpus[start : start + corpus_chunk_size].to(queries.device, dtype)  # (C, D)
        if score == "cosine":
            chunk = normalize(chunk)  # (C, D)
        chunk_scores = dot_score(queries, chunk)  # (Q, C)
        top = chunk_scores.topk(min(k, chunk.shape[0]), dim=1)  # (Q, min(k, C)) each
        merged_scores = torch.cat([best_scores, top.values], dim=1)  # (Q, k' + min(k, C))
        merged_indices = torch.cat([best_indices, top.indices + start], dim=1)  # same
        keep = merged_scores.topk(min(k, merged_scores.shape[1]), dim=1)  # (Q, <= k)
        best_scores = keep.values  # (Q, <= k)
        best_indices = merged_indices.gather(1, keep.indices)  # (Q, <= k)
    return best_scores, best_indices
