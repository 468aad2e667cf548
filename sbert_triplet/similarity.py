"""Similarities and distances between embeddings: pure functions and small distance objects.

Conventions (all functions accept float tensors, 1-D inputs are treated as one row):

- *matrix* functions: ``(N, D) x (M, D) -> (N, M)``;
- *pairwise* functions: ``(N, D) x (N, D) -> (N,)``, row i against row i.

Cosine similarity is in [-1, 1] (larger = closer); cosine *distance* is ``1 - cos`` in
[0, 2] (smaller = closer). The cosine of an all-zero vector with anything is 0.0, never
NaN, and its gradient is finite. Euclidean distance is the L2 norm of the difference,
with a finite gradient at zero distance; squared Euclidean distance is its square (smooth
everywhere). The dot product is a *similarity* (larger = closer), unbounded unless the
embeddings are unit-normalised (then it equals the cosine, in [-1, 1]).

Distance objects (:class:`Distance`) carry their direction (``is_inverted``) and range, so a
loss takes one argument for "how to compare" instead of flags.
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


def squared_euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """Squared L2 distance of every row of ``a`` to every row of ``b``.  (N, D) x (M, D) -> (N, M)"""
    a, b = _as_2d(a), _as_2d(b)
    diff = a.unsqueeze(1) - b.unsqueeze(0)  # (N, M, D)
    return (diff * diff).sum(dim=-1)  # (N, M)


def pairwise_squared_euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """Squared L2 distance of ``a[i]`` to ``b[i]``.  (N, D) x (N, D) -> (N,)"""
    diff = _as_2d(a) - _as_2d(b)  # (N, D)
    return (diff * diff).sum(dim=-1)  # (N,)


def euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """L2 distance of every row of ``a`` to every row of ``b``.  (N, D) x (M, D) -> (N, M)"""
    return _safe_sqrt(squared_euclidean_distance(a, b))  # (N, M)


def pairwise_euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """L2 distance of ``a[i]`` to ``b[i]``.  (N, D) x (N, D) -> (N,)"""
    return _safe_sqrt(pairwise_squared_euclidean_distance(a, b))  # (N,)


class Distance:
    """A distance or similarity between embeddings that knows its direction and range.

    ``is_inverted`` is False for a distance (smaller = closer, values >= 0) and True for a
    similarity (larger = closer). ``value_range(normalized)`` is ``(low, high)``, the values
    it can take (``math.inf`` when unbounded), on any embeddings or, with
    ``normalized=True``, on unit-normalised ones. ``max_value`` is ``high``; ``max_gap`` is
    ``high - low``, the largest difference between two values: a triplet margin at or
    above it can never be met (``d(a, n) - d(a, p) <= max_gap`` for a distance,
    ``s(a, p) - s(a, n) <= max_gap`` for a similarity). Subclasses define
    ``pairwise``, ``matrix`` and ``value_range``.
    """

    name: str = "distance"
    is_inverted: bool = False

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:  # (N, D) x (N, D) -> (N,)
        raise NotImplementedError

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:  # (N, D) x (M, D) -> (N, M)
        raise NotImplementedError

    def value_range(self, normalized: bool = False) -> tuple[float, float]:
        raise NotImplementedError

    def max_value(self, normalized: bool = False) -> float:
        """Largest value this distance (or similarity) can take; ``math.inf`` when unbounded."""
        return self.value_range(normalized)[1]

    def max_gap(self, normalized: bool = False) -> float:
        """Largest difference between two values, ``high - low``; ``math.inf`` when unbounded."""
        low, high = self.value_range(normalized)
        return high - low

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EuclideanDistance(Distance):
    """d(x, y) = ||x - y||_2, in [0, inf); in [0, 2] for unit-normalised embeddings."""

    name = "euclidean"

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return pairwise_euclidean_distance(x, y)

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:
        return euclidean_distance(x, y)

    def value_range(self, normalized: bool = False) -> tuple[float, float]:
        return (0.0, 2.0 if normalized else math.inf)


class SquaredEuclideanDistance(Distance):
    """d(x, y) = ||x - y||_2^2, in [0, inf); in [0, 4] for unit-normalised embeddings.

    Units are squared L2: a margin of 0.5 here is not a margin of 0.5 in L2.
    """

    name = "squared_euclidean"

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return pairwise_squared_euclidean_distance(x, y)

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:
        return squared_euclidean_distance(x, y)

    def value_range(self, normalized: bool = False) -> tuple[float, float]:
        return (0.0, 4.0 if normalized else math.inf)


class CosineDistance(Distance):
    """d(x, y) = 1 - cos(x, y), in [0, 2]; a zero vector is at distance 1 from everything."""

    name = "cosine"

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - pairwise_cos_sim(x, y)

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - cos_sim(x, y)

    def value_range(self, normalized: bool = False) -> tuple[float, float]:
        return (0.0, 2.0)


class DotProductSimilarity(Distance):
    """s(x, y) = x . y, a *similarity* (``is_inverted``: larger = closer).

    In (-inf, inf); in [-1, 1] (the cosine) for unit-normalised embeddings, so the largest
    gap ``s(a, p) - s(a, n)`` is 2 there and unbounded otherwise.
    """

    name = "dot"
    is_inverted = True

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return pairwise_dot_score(x, y)

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:
        return dot_score(x, y)

    def value_range(self, normalized: bool = False) -> tuple[float, float]:
        return (-1.0, 1.0) if normalized else (-math.inf, math.inf)


DISTANCES: dict[str, type[Distance]] = {
    EuclideanDistance.name: EuclideanDistance,
    SquaredEuclideanDistance.name: SquaredEuclideanDistance,
    CosineDistance.name: CosineDistance,
    DotProductSimilarity.name: DotProductSimilarity,
}


def get_distance(distance: str | Distance) -> Distance:
    """Return a :class:`Distance` for a name or pass one through.

    Names: ``"euclidean"``, ``"squared_euclidean"``, ``"cosine"`` (``1 - cos``) and ``"dot"``
    (a similarity: check ``is_inverted`` before comparing values).

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
