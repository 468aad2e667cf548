"""One small interface for every index backend, and :func:`build_index` to pick one.

A backend holds ``N`` corpus vectors of dimension ``D`` and answers
``search(queries (Q, D), k) -> (scores (Q, k'), rows (Q, k'))`` with
``k' = min(k, N)``: similarities (larger = closer), best first, ``rows`` int64 corpus
row numbers (``-1`` with score ``-inf`` where an approximate backend found fewer than
``k'`` neighbours). Embeddings may live in memory (a tensor / array) or on disk
(a list of memory-mapped chunks from :mod:`sbert_triplet.index.store`).

Backends: ``exact`` (the reference: chunked brute force in torch, ties by row
ascending), ``faiss-flat`` (exact inner product in FAISS), ``faiss-hnsw`` (graph,
Malkov & Yashunin 2018), ``faiss-ivf`` (inverted file, k-means cells; Jégou et al. 2011).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from sbert_triplet.errors import ConfigError
from sbert_triplet.index.exact import check_score, check_top_k, prepare_queries, topk_over_chunks

BACKENDS = ("exact", "faiss-flat", "faiss-hnsw", "faiss-ivf")


@runtime_checkable
class VectorIndex(Protocol):
    """What mining, evaluation and the CLI need from an index."""

    score: str
    dim: int

    def __len__(self) -> int: ...

    def search(self, queries: Any, k: int) -> tuple[Tensor, Tensor]: ...


def as_chunks(embeddings: Any) -> list[Any]:
    """A ``(N, D)`` tensor / array, or a sequence of ``(C_i, D)`` chunks, as a list of chunks."""
    if isinstance(embeddings, (torch.Tensor, np.ndarray)):
        return [embeddings]
    return list(embeddings)


def _chunk_dims(chunks: Sequence[Any]) -> tuple[int, int]:
    dims = {int(c.shape[1]) for c in chunks if len(c.shape) == 2}
    if any(len(c.shape) != 2 for c in chunks) or len(dims) > 1:
        raise ValueError(
            "index embeddings must be 2-D (N, D) with one dimension D; got shapes "
            f"{[tuple(c.shape) for c in chunks][:5]}"
        )
    return sum(int(c.shape[0]) for c in chunks), dims.pop() if dims else 0


def check_queries(queries: Any, dim: int) -> Tensor:
    """Queries as a ``(Q, D)`` tensor; a 1-D vector is one query.

    Raises:
        ValueError: not 1-D / 2-D, or the dimension differs from the index's.
    """
    q = torch.as_tensor(np.asarray(queries) if not isinstance(queries, Tensor) else queries)
    q = q.unsqueeze(0) if q.dim() == 1 else q  # (Q, D)
    if q.dim() != 2 or q.shape[1] != dim:
        raise ValueError(
            f"queries must be (Q, {dim}) to match the index; got shape {tuple(q.shape)}. "
            "Encode the queries with the model the index was built with"
        )
    return q


class ExactIndex:
    """Exact top-k by cosine or dot product over in-memory or memory-mapped chunks.

    Args:
        embeddings: ``(N, D)`` tensor / array, or a sequence of ``(C_i, D)`` chunks
            (e.g. ``np.load(..., mmap_mode="r")``), scanned one at a time, so the memory
            is one ``(Q, C_i)`` score matrix plus one chunk in float32.
        score: ``"cosine"`` or ``"dot"``.

    Raises:
        ValueError: unknown score, or chunks of different dimension.
    """

    backend = "exact"

    def __init__(self, embeddings: Any, score: str = "cosine") -> None:
        check_score(score)
        self.chunks = as_chunks(embeddings)
        self.score = score
        self._n, self.dim = _chunk_dims(self.chunks)

    def __len__(self) -> int:
        return self._n

    @torch.no_grad()
    def search(self, queries: Any, k: int) -> tuple[Tensor, Tensor]:
        """``scores (Q, min(k, N))`` float32, ``rows (Q, min(k, N))`` int64; see the module doc."""
        check_top_k(k)
        q = prepare_queries(check_queries(queries, self.dim), self.score, torch.float32)  # (Q, D)
        starts = np.cumsum([0] + [int(c.shape[0]) for c in self.chunks])
        pairs = ((int(s), c if isinstance(c, Tensor) else torch.from_numpy(np.array(c, dtype=np.float32)))
                 for s, c in zip(starts, self.chunks))  # one (C, D) float32 chunk in memory at a time
        return topk_over_chunks(q, pairs, k, self.score)


def build_index(embeddings: Any, backend: str = "exact", score: str = "cosine", **options: Any) -> VectorIndex:
    """Build an index over ``embeddings`` (``(N, D)``, or a sequence of ``(C_i, D)`` chunks).

    Args:
        backend: ``"exact"``, ``"faiss-flat"``, ``"faiss-hnsw"`` or ``"faiss-ivf"``.
        score: ``"cosine"`` (vectors L2-normalised, inner product = cosine in [-1, 1]) or
            ``"dot"`` (raw inner product).
        options: FAISS options, see :class:`~sbert_triplet.index.faiss_backend.FaissIndex`
            (``hnsw_m``, ``ef_construction``, ``ef_search``, ``nlist``, ``nprobe``).

    Returns:
        An object with ``search(queries, k) -> (scores, rows)``, ``len()``, ``dim``, ``score``.

    Raises:
        ConfigError: unknown backend, or options given to the exact backend.
        ValueError: bad embeddings or score.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown index backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "exact":
        if options:
            raise ConfigError(f"the exact backend takes no options; got {sorted(options)}")
        return ExactIndex(embeddings, score=score)
    from sbert_triplet.index.faiss_backend import FaissIndex

    return FaissIndex.build(embeddings, kind=backend.removeprefix("faiss-"), score=score, **options)
