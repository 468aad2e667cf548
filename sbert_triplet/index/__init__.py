"""Nearest-neighbour search over embeddings, and on-disk indexes of a corpus.

- :func:`build_index` (in-memory or chunked embeddings -> an object with
  ``search(queries, k) -> (scores, rows)``): ``exact`` (the reference) or FAISS
  ``faiss-flat`` / ``faiss-hnsw`` / ``faiss-ivf``; :func:`exact_search` is the function form.
- :func:`encode_to_disk` (``sbert-triplet index``): encode a corpus chunk by chunk into a
  folder, resumable; :func:`open_index` (``sbert-triplet search``) loads it.

Heavy pieces (FAISS, the encoder loop) are imported on first use.
"""

from __future__ import annotations

import importlib

from sbert_triplet.index.exact import exact_search

_LAZY = {
    "BACKENDS": "sbert_triplet.index.base",
    "ExactIndex": "sbert_triplet.index.base",
    "VectorIndex": "sbert_triplet.index.base",
    "build_index": "sbert_triplet.index.base",
    "FaissIndex": "sbert_triplet.index.faiss_backend",
    "CorpusSpec": "sbert_triplet.index.corpus",
    "IndexConfig": "sbert_triplet.index.config",
    "encode_texts": "sbert_triplet.index.encode",
    "encode_to_disk": "sbert_triplet.index.encode",
    "IndexMismatchError": "sbert_triplet.index.store",
    "IndexedCorpus": "sbert_triplet.index.search",
    "open_index": "sbert_triplet.index.search",
    "read_queries": "sbert_triplet.index.search",
}

__all__ = sorted(_LAZY) + ["exact_search"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sbert_triplet.index' has no attribute {name!r}")
