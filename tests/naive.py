"""Plain-Python references shared by the loss tests (no torch in the arithmetic)."""

from __future__ import annotations

import math

import torch


def rand(*shape, dtype=torch.float64, seed=0):
    """Seeded standard-normal tensor."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype)


def py_dot(u, v):
    return sum(x * y for x, y in zip(u, v))


def py_cos(u, v):
    """Cosine similarity of two lists; a zero vector gives 0 (as sbert_triplet.similarity)."""
    norm = max(math.sqrt(py_dot(u, u)), 1e-12) * max(math.sqrt(py_dot(v, v)), 1e-12)
    return py_dot(u, v) / norm
