"""Nearest-neighbour search over embeddings: exact top-k (the reference implementation)."""

from sbert_triplet.index.exact import exact_search

__all__ = ["exact_search"]
