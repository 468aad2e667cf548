"""Tests for sbert_triplet.similarity: zero-safe cosine, euclidean, distance objects."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sbert_triplet.errors import ConfigError
from sbert_triplet.similarity import (
    CosineDistance,
    EuclideanDistance,
    cos_sim,
    dot_score,
    euclidean_distance,
    get_distance,
    normalize,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_distance,
)

DTYPES = [torch.float32, torch.float64]


def _rand(*shape, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cos_sim_zero_vector_is_zero_without_nan(dtype):
    zero = torch.zeros(1, 4, dtype=dtype, requires_grad=True)
    other = torch.cat([_rand(2, 4, dtype=dtype), torch.zeros(1, 4, dtype=dtype)]).requires_grad_(True)
    sim = cos_sim(zero, other)
    assert sim.shape == (1, 3)
    assert torch.equal(sim, torch.zeros(1, 3, dtype=dtype))
    sim.sum().backward()
    assert torch.isfinite(zero.grad).all() and torch.isfinite(other.grad).all()

    pair = pairwise_cos_sim(zero.detach().expand(3, 4).clone().requires_grad_(True), other)
    assert torch.equal(pair, torch.zeros(3, dtype=dtype))


def test_pairwise_cos_sim_zero_gradient_is_finite():
    a = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    b = _rand(2, 3).requires_grad_(True)
    pairwise_cos_sim(a, b).sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert torch.equal(CosineDistance().pairwise(a, b), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cos_sim_matches_torch(dtype):
    a, b = _rand(5, 7, dtype=dtype, seed=1), _rand(6, 7, dtype=dtype, seed=2)
    expected = F.cosine_similarity(a.unsqueeze(1), b.unsqueeze(0), dim=-1)  # (5, 6)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(cos_sim(a, b), expected, atol=tol, rtol=tol)
    torch.testing.assert_close(pairwise_cos_sim(a, b[:5]), F.cosine_similarity(a, b[:5]), atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_euclidean_matches_cdist(dtype):
    a, b = _rand(5, 7, dtype=dtype, seed=3), _rand(4, 7, dtype=dtype, seed=4)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(euclidean_distance(a, b), torch.cdist(a, b), atol=tol, rtol=tol)


def test_euclidean_zero_distance_has_finite_gradient():
    a = _rand(3, 4).requires_grad_(True)
    b = a.detach().clone().requires_grad_(True)
    d = pairwise_euclidean_distance(a, b)
    assert torch.equal(d, torch.zeros(3, dtype=torch.float64))
    (d.sum() + euclidean_distance(a, b).sum()).backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_pairwise_equals_diagonal_of_matrix():
    a, b = _rand(6, 5, seed=5), _rand(6, 5, seed=6)
    pairs = [
        (pairwise_cos_sim, cos_sim),
        (pairwise_dot_score, dot_score),
        (pairwise_euclidean_distance, euclidean_distance),
        (EuclideanDistance().pairwise, EuclideanDistance().matrix),
        (CosineDistance().pairwise, CosineDistance().matrix),
    ]
    for pairwise, matrix in pairs:
        torch.testing.assert_close(pairwise(a, b), torch.diagonal(matrix(a, b)), atol=1e-12, rtol=1e-12)


def test_one_dimensional_inputs_are_one_row():
    x = torch.tensor([3.0, 4.0], dtype=torch.float64)
    y = torch.tensor([4.0, 3.0], dtype=torch.float64)
    assert cos_sim(x, y).shape == (1, 1)
    assert cos_sim(x, y).item() == pytest.approx(24 / 25)
    assert pairwise_cos_sim(x, y).shape == (1,)
    assert euclidean_distance(x, y).item() == pytest.approx(math.sqrt(2))
    assert pairwise_euclidean_distance(x, y).item() == pytest.approx(math.sqrt(2))
    assert dot_score(x, y).item() == pytest.approx(24.0)
    torch.testing.assert_close(normalize(x), torch.tensor([[0.6, 0.8]], dtype=torch.float64))
    assert cos_sim(x, torch.stack([x, y])).shape == (1, 2)


def test_normalize_keeps_zero_rows():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    torch.testing.assert_close(normalize(x), torch.tensor([[0.0, 0.0], [0.6, 0.8]]))


def test_get_distance_names_and_ranges():
    assert isinstance(get_distance("euclidean"), EuclideanDistance)
    assert isinstance(get_distance("COSINE"), CosineDistance)
    cosine = CosineDistance()
    assert get_distance(cosine) is cosine
    assert EuclideanDistance().max_value(normalized=False) == math.inf
    assert EuclideanDistance().max_value(normalized=True) == 2.0
    assert cosine.max_value() == 2.0


def test_get_distance_unknown_name():
    with pytest.raises(ConfigError, match="manhattan.*choose one of.*cosine.*euclidean"):
        get_distance("manhattan")
    assert issubclass(ConfigError, ValueError)
