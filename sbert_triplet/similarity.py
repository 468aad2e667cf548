"""Similarities and distances between embeddings: pure functions and small distance objects.

Conventions (all functions accept float tensors, 1-D inputs are treated as one row):

- *matrix* functions: ``(N, D) x (M, D) -> (N, M)``;
- *pairwise* functions: ``(N, D) x (N, D) -> (N,)``, row i against row i.

Cosine similarity is in [-1, 1] (larger = closer); cosine *distance* is ``1 - cos`` in
[0, 2] (smaller = closer). The cosine of an all-zero vector with anything is 0.0, never
NaN, and its gradient is finite. Euclidean distance is the L2 norm of the difference,
with a finite gradient at zero distance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbert_triplet.errors import ConfigError

_EPS = 1e-12


def _as_2d(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    return x.unsqueeze(0) if x.dim() == 1 else x


def normalize(x: Tensor) -> Tensor:
    """Scale each row to unit L2 norm; an all-zero row stays all zeros.  (N, D) -> (N, D)"""
    x = _as_2d(x)
    norm = x.norm(p=2, dim=-1, keepdim=True).clamp_min(_EPS)  # (N, 1)
    return x / norm


def cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``.  (N, D) x (M, D) -> (N, M)"""
    return normalize(a) @ normalize(b).transpose(0, 1)  # (N, M)


def pairwise_cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of ``a[i]`` with ``b[i]``.  (N, D) x (N, D) -> (N,)"""
    return (normalize(a) * normalize(b)).sum(dim=-1)  # (N,)


def dot_score(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of every row of ``a`` with every row of ``b``.  (N, D) x (M, D) -> (N, M)"""
    return _as_2d(a) @ _as_2d(b).transpose(0, 1)  # (N, M)


def pairwise_dot_score(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of ``a[i]`` with ``b[i]``.  (N, D) x (N, D) -> (N,)"""
    return (_as_2d(a) * _as_2d(b)).sum(dim=-1)  # (N,)


def _safe_sqrt(squared: Tensor) -> Tensor:
    # sqrt has an infinite gradient at 0; clamping keeps it finite (and 0 where the input is 0).
    return squared.clamp_min(_EPS * _EPS).sqrt() * (squared > 0)


def euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """L2 distance of every row of ``a`` to every row of ``b``.  (N, D) x (M, D) -> (N, M)"""
    a, b = _as_2d(a), _as_2d(b)
    diff = a.unsqueeze(1) - b.unsqueeze(0)  # (N, M, D)
    return _safe_sqrt((diff * diff).sum(dim=-1))  # (N, M)


def pairwise_euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """L2 distance of ``a[i]`` to ``b[i]``.  (N, D) x (N, D) -> (N,)"""
    diff = _as_2d(a) - _as_2d(b)  # (N, D)
    return _safe_sqrt((diff * diff).sum(dim=-1))  # (N,)


class Distance:
    """A distance between embeddings that knows its direction and range.

    Smaller is closer for every subclass here. ``max_value(normalized)`` is the largest
    value the distance can take (``math.inf`` when unbounded), used to reject margins
    that can never be met.
    """

    name: str = "distance"

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:  # (N, D) x (N, D) -> (N,)
        raise NotImplementedError

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:  # (N, D) x (M, D) -> (N, M)
        raise NotImplementedError

    def max_value(self, normalized: bool = False) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EuclideanDistance(Distance):
    """d(x, y) = ||x - y||_2, in [0, inf); in [0, 2] for unit-normalised embeddings."""

    name = "euclidean"

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return pairwise_euclidean_distance(x, y)

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:
        return euclidean_distance(x, y)

    def max_value(self, normalized: bool = False) -> float:
        return 2.0 if normalized else math.inf


class CosineDistance(Distance):
    """d(x, y) = 1 - cos(x, y), in [0, 2]; a zero vector is at distance 1 from everything."""

    name = "cosine"

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - pairwise_cos_sim(x, y)

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - cos_sim(x, y)

    def max_value(self, normalized: bool = False) -> float:
        return 2.0


DISTANCES: dict[str, type[Distance]] = {
    EuclideanDistance.name: EuclideanDistance,
    CosineDistance.name: CosineDistance,
}


def get_distance(distance: str | Distance) -> Distance:
    """Return a :class:`Distance` for a name (``"euclidean"``, ``"cosine"``) or pass one through.

    Raises:
        ConfigError: the name is not one of the known distances.
    """
    if isinstance(distance, Distance):
        return distance
    try:
        return DISTANCES[str(distance).lower()]()
    except KeyError:
        raise ConfigError(
            f"unknown distance {distance!r}; choose one of {sorted(DISTANCES)}"
        ) from None
