"""TripletLoss options (distance, soft margin, swap, reduction) and the new distances.

Naive Python loops, exact hand-made values, peers (sentence-transformers, pytorch-metric-learning).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from naive import py_cos as _py_cos
from naive import py_dot as _py_dot
from naive import rand as _rand

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.triplet import TripletLoss
from sbert_triplet.similarity import (
    DotProductSimilarity,
    SquaredEuclideanDistance,
    dot_score,
    get_distance,
    squared_euclidean_distance,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
DISTANCES = ["euclidean", "squared_euclidean", "cosine", "dot"]


def _py_sq(u, v):
    return sum((x - y) ** 2 for x, y in zip(u, v))


# Distance-like (smaller = closer): the dot product is negated.
PY_ORIENTED = {
    "euclidean": lambda u, v: math.sqrt(_py_sq(u, v)),
    "squared_euclidean": _py_sq,
    "cosine": lambda u, v: 1.0 - _py_cos(u, v),
    "dot": lambda u, v: -_py_dot(u, v),
}


def naive_triplet(anchor, positive, negatives, distance, margin, soft, swap, reduction):
    """Lists of floats in; (loss, number of active triplets) out."""
    dist = PY_ORIENTED[distance]
    losses = []
    for a, p, negs in zip(anchor, positive, negatives):
        for n in negs:
            d_neg = min(dist(a, n), dist(p, n)) if swap else dist(a, n)
            gap = dist(a, p) - d_neg
            losses.append(math.log1p(math.exp(gap)) if soft else max(gap + margin, 0.0))
    active = [x for x in losses if x > 0]
    if reduction == "mean":
        return sum(losses) / len(losses), len(active)
    return (sum(active) / len(active) if active else 0.0), len(active)


def _inputs(dtype, seed=0, batch=5, num_neg=3, dim=6):
    anchor = _rand(batch, dim, dtype=dtype, seed=seed)
    positive = anchor + 0.7 * _rand(batch, dim, dtype=dtype, seed=seed + 1)  # some easy, some hard
    negative = anchor.unsqueeze(1) + 1.0 * _rand(batch, num_neg, dim, dtype=dtype, seed=seed + 2)  # (B, K, D)
    return anchor, positive, negative


# ----------------------------------------------------------------------------- naive loop


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distance", DISTANCES)
def test_triplet_options_equal_naive_loop(dtype, distance):
    anchor, positive, negative = _inputs(dtype)
    margin = {"euclidean": 0.8, "squared_euclidean": 1.5, "cosine": 0.3, "dot": 1.0}[distance]
    for soft, swap, reduction in itertools.product([False, True], [False, True], ["mean", "mean_active"]):
        options = {"soft_margin": soft, "swap": swap, "reduction": reduction}
        loss_fn = TripletLoss(distance, margin=0.5 if soft else margin, **options)
        loss = loss_fn(anchor, positive, negative)
        assert loss.dim() == 0 and loss.dtype == dtype
        expected, active = naive_triplet(
            anchor.tolist(), positive.tolist(), negative.tolist(), distance, loss_fn.margin, soft, swap, reduction
        )
        assert loss.item() == pytest.approx(expected, abs=TOL[dtype], rel=TOL[dtype]), (soft, swap, reduction)
        assert loss_fn.last_num_active == active
        if not soft:
            assert 0 < active < anchor.shape[0] * negative.shape[1]  # the case exercises both branches


def test_swap_changes_the_loss_when_the_positive_is_nearer_the_negative():
    anchor = torch.tensor([[0.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0]])
    negative = torch.tensor([[1.5, 0.0]])  # d(a, n) = 1.5 but d(p, n) = 0.5
    plain = TripletLoss(margin=0.5)(anchor, positive, negative)
    swapped = TripletLoss(margin=0.5, swap=True)(anchor, positive, negative)
    assert plain.item() == 0.0
    assert swapped.item() == pytest.approx(1.0)  # 1 - 0.5 + 0.5


# ----------------------------------------------------------------------------- exact values


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "mean_active"])
def test_satisfied_margin_gives_exactly_zero_and_zero_gradients(swap, reduction):
    anchor = torch.tensor([[0.0, 0.0]], requires_grad=True)
    positive = torch.tensor([[0.1, 0.0]], requires_grad=True)
    negative = torch.tensor([[[3.0, 0.0], [3.0, 0.0]]], requires_grad=True)  # (1, 2, 2): n twice
    loss_fn = TripletLoss("euclidean", margin=0.5, swap=swap, reduction=reduction)
    loss = loss_fn(anchor, positive, negative)
    assert loss.item() == 0.0 and loss_fn.last_num_active == 0
    loss.backward()
    for x in (anchor, positive, negative):
        assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "mean_active"])
def test_constant_encoder_loss_is_margin(distance, swap, reduction):
    emb = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    anchor = emb.expand(4, 3).clone().requires_grad_(True)
    positive = emb.expand(4, 3).clone().requires_grad_(True)
    negative = emb.expand(4, 2, 3).clone().requires_grad_(True)
    loss = TripletLoss(distance, margin=0.5, swap=swap, reduction=reduction)(anchor, positive, negative)
    assert loss.item() == pytest.approx(0.5, abs=1e-12)
    loss.backward()
    assert all(torch.isfinite(x.grad).all() for x in (anchor, positive, negative))
    soft = TripletLoss(distance, soft_margin=True, swap=swap, reduction=reduction)(anchor, positive, negative)
    assert soft.item() == pytest.approx(math.log(2.0), abs=1e-12)


@pytest.mark.parametrize("soft_margin", [False, True])
def test_mean_active_with_nothing_active_is_exactly_zero(soft_margin):
    anchor = torch.zeros(2, 2, requires_grad=True)
    positive = torch.zeros(2, 2, requires_grad=True)
    negative = torch.full((2, 3, 2), 200.0, requires_grad=True)  # softplus(-283) underflows to 0
    loss_fn = TripletLoss("euclidean", soft_margin=soft_margin, reduction="mean_active")
    loss = loss_fn(anchor, positive, negative)
    assert loss.item() == 0.0 and torch.isfinite(loss) and loss.requires_grad
    assert loss_fn.last_num_active == 0
    loss.backward()
    for x in (anchor, positive, negative):
        assert torch.equal(x.grad, torch.zeros_like(x))


def test_mean_active_divides_by_active_triplets_only():
    anchor = torch.zeros(1, 1)
    positive = torch.ones(1, 1)
    negative = torch.tensor([[[1.2], [10.0], [0.5]]])  # losses 0.3, 0, 1.0
    assert TripletLoss(reduction="mean")(anchor, positive, negative).item() == pytest.approx(1.3 / 3)
    loss_fn = TripletLoss(reduction="mean_active")
    assert loss_fn(anchor, positive, negative).item() == pytest.approx(1.3 / 2)
    assert loss_fn.last_num_active == 2


# ----------------------------------------------------------------------------- configuration


def test_defaults_and_repr():
    loss_fn = TripletLoss()
    assert (loss_fn.distance.name, loss_fn.margin, loss_fn.soft_margin, loss_fn.swap, loss_fn.reduction) == (
        "euclidean", 0.5, False, False, "mean"
    )
    assert loss_fn.last_num_active == 0
    text = repr(TripletLoss("dot", soft_margin=True, swap=True, reduction="mean_active"))
    assert "'dot'" in text and "soft_margin=True" in text and "swap=True" in text and "mean_active" in text


def test_soft_margin_rejects_a_margin():
    with pytest.raises(ConfigError, match="soft_margin=True has no margin"):
        TripletLoss(soft_margin=True, margin=0.3)
    TripletLoss("cosine", soft_margin=True).check_margin(normalized=True)  # no margin, nothing to check


@pytest.mark.parametrize(
    "options,match",
    [
        ({"reduction": "sum"}, "unknown reduction 'sum'"),
        ({"reduction": "none"}, r"\['mean', 'mean_active'\]"),
        ({"swap": 1}, "swap must be True or False"),
        ({"soft_margin": "yes"}, "soft_margin must be True or False"),
        ({"distance": "manhattan"}, "manhattan.*dot.*squared_euclidean"),
    ],
)
def test_invalid_options(options, match):
    with pytest.raises(ConfigError, match=match):
        TripletLoss(**options)


def test_margin_bounds_of_the_new_distances():
    TripletLoss("dot", margin=50.0)  # unbounded on any embeddings
    with pytest.raises(ConfigError, match=r"can never be met.*s\(a, p\) - s\(a, n\) is at most 2"):
        TripletLoss("dot", margin=2.0).check_margin(normalized=True)
    TripletLoss("dot", margin=1.9).check_margin(normalized=True)
    TripletLoss("squared_euclidean", margin=3.9).check_margin(normalized=True)
    with pytest.raises(ConfigError, match="at most 4"):
        TripletLoss("squared_euclidean", margin=4.0).check_margin(normalized=True)


# ----------------------------------------------------------------------------- distances


def test_new_distances_direction_range_and_values():
    sq, dot = get_distance("squared_euclidean"), get_distance("DOT")
    assert isinstance(sq, SquaredEuclideanDistance) and isinstance(dot, DotProductSimilarity)
    assert not sq.is_inverted and dot.is_inverted and not get_distance("cosine").is_inverted
    assert sq.value_range(normalized=True) == (0.0, 4.0) and sq.max_value() == math.inf
    assert dot.value_range(normalized=True) == (-1.0, 1.0) and dot.max_value(normalized=True) == 1.0
    assert dot.max_gap(normalized=True) == 2.0 and dot.max_gap() == math.inf
    assert get_distance("euclidean").max_gap(normalized=True) == 2.0
    assert get_distance("cosine").max_gap() == 2.0
    a, b = _rand(5, 7, seed=3), _rand(4, 7, seed=4)
    torch.testing.assert_close(squared_euclidean_distance(a, b), torch.cdist(a, b) ** 2)
    torch.testing.assert_close(dot_score(a, b), a @ b.T)
    for d in (sq, dot):
        torch.testing.assert_close(d.pairwise(a[:4], b), torch.diagonal(d.matrix(a[:4], b)))


# ----------------------------------------------------------------------------- peers


def test_equals_sentence_transformers_euclidean_with_several_negatives():
    from sentence_transformers.sentence_transformer.losses import TripletLoss as STTripletLoss

    for dtype in DTYPES:
        anchor, positive, negative = _inputs(dtype, seed=20, batch=8, num_neg=2, dim=12)
        ours = TripletLoss("euclidean", margin=1.5)(anchor, positive, negative)
        # ST takes one negative per row: repeat each anchor and positive K times.
        columns = [anchor.repeat_interleave(2, 0), positive.repeat_interleave(2, 0), negative.reshape(16, 12)]
        theirs = STTripletLoss(None, triplet_margin=1.5).compute_loss_from_embeddings(columns, None)
        assert 0 < theirs.item() and abs(ours.item() - theirs.item()) < 1e-6


def _pml_loss(distance, margin, swap, soft, reduction, anchor, positive, negative):
    from pytorch_metric_learning import distances, losses, reducers

    batch, num_neg, dim = negative.shape
    peer_distance = {
        "euclidean": distances.LpDistance(normalize_embeddings=False, p=2, power=1),
        "squared_euclidean": distances.LpDistance(normalize_embeddings=False, p=2, power=2),
        "dot": distances.DotProductSimilarity(normalize_embeddings=False),
    }[distance]
    reducer = reducers.AvgNonZeroReducer() if reduction == "mean_active" else reducers.MeanReducer()
    # PML's smooth loss is softplus(gap + margin): margin 0 gives our soft margin.
    peer = losses.TripletMarginLoss(
        margin=0.0 if soft else margin, swap=swap, smooth_loss=soft, distance=peer_distance, reducer=reducer
    )
    embeddings = torch.cat([anchor, positive, negative.reshape(batch * num_neg, dim)])  # (2B+BK, D)
    rows = torch.arange(batch).repeat_interleave(num_neg)  # (B*K,)
    indices = (rows, batch + rows, 2 * batch + torch.arange(batch * num_neg))
    return peer(embeddings, indices_tuple=indices)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "dot"])
def test_equals_pytorch_metric_learning(dtype, distance):
    anchor, positive, negative = _inputs(dtype, seed=30, batch=6, num_neg=3, dim=10)
    margin = {"euclidean": 1.0, "squared_euclidean": 4.0, "dot": 2.0}[distance]
    for soft, swap, reduction in itertools.product([False, True], [False, True], ["mean", "mean_active"]):
        ours_in = [x.clone().requires_grad_(True) for x in (anchor, positive, negative)]
        theirs_in = [x.clone().requires_grad_(True) for x in (anchor, positive, negative)]
        options = {"soft_margin": soft, "swap": swap, "reduction": reduction}
        loss_fn = TripletLoss(distance, margin=0.5 if soft else margin, **options)
        ours = loss_fn(*ours_in)
        theirs = _pml_loss(distance, margin, swap, soft, reduction, *theirs_in)
        assert 0 < theirs.item()
        assert abs(ours.item() - theirs.item()) < 1e-6 * max(1.0, abs(theirs.item())), (soft, swap, reduction)
        ours.backward()
        theirs.backward()
        for x, y in zip(ours_in, theirs_in):
            torch.testing.assert_close(x.grad, y.grad, atol=1e-5, rtol=1e-4)
