"""Step 1-2 of mining: embed queries and corpus, then search candidates (dense and / or BM25).

Scores used downstream are always the dense model's cosine similarities in [-1, 1], also
for candidates found by BM25 (:func:`dense_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sbert_triplet.index.exact import exact_search
from sbert_triplet.similarity import normalize


def embed(model: Any, texts: Sequence[str], batch_size: int = 64) -> Tensor:
    """L2-normalised embeddings ``(len(texts), D)`` float32; each distinct text encoded once.

    ``model`` is anything with a SentenceTransformer-like
    ``encode(texts, batch_size=..., convert_to_tensor=True, show_progress_bar=...)``.

    Raises:
        ValueError: ``texts`` is empty or the encoder returns the wrong shape.
    """
    from sbert_triplet.evaluation.sts import encode_unique

    unique, rows = encode_unique(model, list(texts), batch_size=batch_size)  # (U, D)
    return normalize(unique.float().cpu())[torch.as_tensor(rows, dtype=torch.long)]  # (len(texts), D)


def dense_candidates(query_embeddings: Tensor, corpus_embeddings: Tensor, top_k: int,
                     search: str = "exact") -> list[list[int]]:
    """Corpus rows of the ``min(top_k, N)`` nearest documents per query by cosine, best first.

    Args:
        query_embeddings: ``(Q, D)``; corpus_embeddings: ``(N, D)``; top_k >= 1.
        search: ``"exact"`` (:func:`sbert_triplet.index.exact_search`) or a FAISS backend of
            :func:`sbert_triplet.index.build_index` (``"faiss-flat"``, ``"faiss-hnsw"``,
            ``"faiss-ivf"``); an approximate index may return fewer rows (its misses, row -1,
            are left out).

    Raises:
        ValueError: as :func:`sbert_triplet.index.exact_search`.
        ConfigError: an unknown ``search`` backend.
    """
    if search == "exact":
        _, indices = exact_search(query_embeddings, corpus_embeddings, top_k, score="cosine")  # (Q, k)
        return indices.tolist()
    from sbert_triplet.index import build_index

    index = build_index(corpus_embeddings, backend=search, score="cosine")
    _, indices = index.search(query_embeddings, top_k)  # (Q, min(k, N)), -1 = no neighbour
    return [[row for row in hits if row >= 0] for hits in indices.tolist()]


def bm25_candidates(queries: Sequence[str], corpus: Sequence[str], top_k: int) -> list[list[int]]:
    """Corpus rows of the best BM25 matches per query (Robertson & Zaragoza 2009; ``bm25s``).

    Texts are lower-cased and tokenised into words of 2+ characters with English stop
    words removed (``bm25s.tokenize``). Only documents sharing a term with the query
    (BM25 score > 0) are returned, best first, at most ``top_k``: a query with no
    lexical match gets an empty list.

    Raises:
        ValueError: ``top_k`` < 1 or an empty corpus.
    """
    import bm25s

    if top_k < 1 or len(corpus) == 0:
        raise ValueError(f"bm25_candidates needs top_k >= 1 and a non-empty corpus, got {top_k}, {len(corpus)} docs")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(corpus), stopwords="en", show_progress=False), show_progress=False)
    query_tokens = bm25s.tokenize(list(queries), stopwords="en", show_progress=False)
    k = min(top_k, len(corpus))
    docs, scores = retriever.retrieve(query_tokens, k=k, show_progress=False, n_threads=1)  # (Q, k) each
    return [[int(d) for d, s in zip(row, row_scores) if s > 0] for row, row_scores in zip(docs, scores)]


def dense_scores(query_embedding: Tensor, corpus_embeddings: Tensor, rows: Sequence[int]) -> list[float]:
    """Cosine similarities of one normalised query ``(D,)`` with corpus rows ``rows`` of the
    normalised ``corpus_embeddings (N, D)``; a list of ``len(rows)`` floats in [-1, 1]."""
    if not rows:
        return []
    picked = corpus_embeddings[torch.as_tensor(list(rows), dtype=torch.long)]  # (R, D)
    return (picked @ query_embedding).tolist()  # (R,)
