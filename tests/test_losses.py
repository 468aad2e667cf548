"""Tests for sbert_triplet.losses: naive Python loops, hand-made cases, peer equality, errors."""

from __future__ import annotations

import math

import pytest
import torch

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses import MultipleNegativesRankingLoss, TripletLoss, build_loss
from sbert_triplet.similarity import CosineDistance

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


# ----------------------------------------------------------------------------- naive loops


def _py_norm(u):
    return max(math.sqrt(sum(x * x for x in u)), 1e-12)


def _py_cos(u, v):
    return sum(x * y for x, y in zip(u, v)) / (_py_norm(u) * _py_norm(v))


def _py_euclid(u, v):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(u, v)))


PY_DIST = {"euclidean": _py_euclid, "cosine": lambda u, v: 1.0 - _py_cos(u, v)}


def naive_triplet(anchor, positive, negatives, distance, margin):
    """anchor, positive: B lists of D floats; negatives: B lists of K lists of D floats."""
    dist = PY_DIST[distance]
    total, count = 0.0, 0
    for a, p, negs in zip(anchor, positive, negatives):
        for n in negs:
            total += max(dist(a, p) - dist(a, n) + margin, 0.0)
            count += 1
    return total / count


def naive_mnr(anchor, positive, negatives, scale):
    """negatives: None or B lists of K lists of D floats; candidates = positives, then row-major negatives."""
    candidates = list(positive)
    for negs in negatives or []:
        candidates.extend(negs)
    total = 0.0
    for i, a in enumerate(anchor):
        logits = [scale * _py_cos(a, c) for c in candidates]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(s - top) for s in logits))
        total += log_z - logits[i]
    return total / len(anchor)


def _rand(*shape, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype)


HAND_ANCHOR = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [1.0, 1.0, -1.0]]
HAND_POSITIVE = [[0.9, 0.2, 0.0], [0.1, 1.0, 0.0], [0.0, 1.0, 1.0]]
HAND_NEGATIVES = [  # (B=3, K=2, D=3)
    [[0.0, 1.0, 0.0], [1.0, 0.1, 0.0]],
    [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    [[-1.0, -1.0, 1.0], [1.0, 1.0, -0.5]],
]


def _cases(dtype):
    """(anchor (B, D), positive (B, D), negatives (B, 2, D)) hand-made and random."""
    hand = tuple(torch.tensor(x, dtype=dtype) for x in (HAND_ANCHOR, HAND_POSITIVE, HAND_NEGATIVES))
    rand = tuple(_rand(*shape, dtype=dtype, seed=i) for i, shape in enumerate([(5, 8), (5, 8), (5, 2, 8)]))
    return [hand, rand]


# ----------------------------------------------------------------------------- triplet


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distance,margin", [("euclidean", 0.5), ("euclidean", 1.7), ("cosine", 0.3)])
@pytest.mark.parametrize("num_neg", [1, 2])
def test_triplet_equals_naive_loop(dtype, distance, margin, num_neg):
    loss_fn = TripletLoss(distance=distance, margin=margin)
    for anchor, positive, negatives in _cases(dtype):
        negatives = negatives[:, :num_neg]  # (B, K, D)
        loss = loss_fn(anchor, positive, negatives if num_neg > 1 else negatives[:, 0])
        assert loss.dim() == 0 and loss.dtype == dtype
        expected = naive_triplet(anchor.tolist(), positive.tolist(), negatives.tolist(), distance, margin)
        assert loss.item() == pytest.approx(expected, abs=TOL[dtype], rel=TOL[dtype])


def test_triplet_satisfied_margin_gives_zero_loss_and_zero_gradients():
    anchor = torch.tensor([[0.0, 0.0]], requires_grad=True)
    positive = torch.tensor([[0.1, 0.0]], requires_grad=True)
    negative = torch.tensor([[[3.0, 0.0], [3.0, 0.0]]], requires_grad=True)  # (1, 2, 2): n twice
    loss = TripletLoss("euclidean", margin=0.5)(anchor, positive, negative)
    assert loss.item() == 0.0
    loss.backward()
    for x in (anchor, positive, negative):
        assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_triplet_constant_encoder_loss_is_margin(distance):
    emb = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    anchor = emb.expand(4, 3).clone().requires_grad_(True)
    positive = emb.expand(4, 3).clone().requires_grad_(True)
    negative = emb.expand(4, 2, 3).clone().requires_grad_(True)
    loss = TripletLoss(distance, margin=0.5)(anchor, positive, negative)
    if distance == "euclidean":
        assert loss.item() == 0.5
    else:
        assert loss.item() == pytest.approx(0.5, abs=1e-12)
    loss.backward()
    assert all(torch.isfinite(x.grad).all() for x in (anchor, positive, negative))


def test_triplet_attributes_and_distance_object():
    loss_fn = TripletLoss(CosineDistance(), margin=1)
    assert loss_fn.margin == 1.0 and loss_fn.distance.name == "cosine"
    assert "cosine" in repr(loss_fn)
    assert TripletLoss().distance.name == "euclidean" and TripletLoss().margin == 0.5


@pytest.mark.parametrize("margin", [2.0, 2.5])
def test_triplet_impossible_cosine_margin(margin):
    with pytest.raises(ValueError, match="can never be met"):
        TripletLoss("cosine", margin=margin)
    TripletLoss("cosine", margin=1.99)


def test_triplet_check_margin_normalized():
    loss_fn = TripletLoss("euclidean", margin=2.5)
    loss_fn.check_margin(normalized=False)
    with pytest.raises(ConfigError, match="can never be met.*unit-normalised"):
        loss_fn.check_margin(normalized=True)
    TripletLoss("euclidean", margin=1.5).check_margin(normalized=True)


@pytest.mark.parametrize("margin", [-0.1, float("nan"), float("inf"), "0.5"])
def test_triplet_invalid_margin(margin):
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=margin)


def test_triplet_unknown_distance():
    with pytest.raises(ConfigError, match="manhattan"):
        TripletLoss("manhattan")


# ----------------------------------------------------------------------------- MNR


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_neg", [0, 1, 2])
@pytest.mark.parametrize("scale", [20.0, 1.0])
def test_mnr_equals_naive_loop(dtype, num_neg, scale):
    loss_fn = MultipleNegativesRankingLoss(scale=scale)
    for anchor, positive, negatives in _cases(dtype):
        negatives = negatives[:, :num_neg] if num_neg else None  # (B, K, D)
        loss = loss_fn(anchor, positive, negatives)
        assert loss.dim() == 0 and loss.dtype == dtype
        neg_lists = None if negatives is None else negatives.tolist()
        expected = naive_mnr(anchor.tolist(), positive.tolist(), neg_lists, scale)
        assert loss.item() == pytest.approx(expected, abs=TOL[dtype], rel=TOL[dtype])


def test_mnr_negative_shapes_are_equivalent():
    anchor, positive, negatives = _cases(torch.float64)[1]
    loss_fn = MultipleNegativesRankingLoss()
    assert torch.equal(loss_fn(anchor, positive, negatives[:, :0]), loss_fn(anchor, positive))
    one = loss_fn(anchor, positive, negatives[:, :1])  # (B, 1, D)
    assert torch.equal(loss_fn(anchor, positive, negatives[:, 0]), one)


@pytest.mark.parametrize("value", [1.0, 0.0])
def test_mnr_constant_encoder(value):
    emb = torch.full((8,), value)
    anchor = emb.expand(4, 8).clone().requires_grad_(True)
    positive = emb.expand(4, 8).clone().requires_grad_(True)
    loss_fn = MultipleNegativesRankingLoss()
    assert loss_fn(anchor, positive).item() == pytest.approx(1.386294, abs=1e-5)
    negatives = emb.expand(4, 1, 8).clone().requires_grad_(True)
    loss = loss_fn(anchor, positive, negatives)
    assert loss.item() == pytest.approx(2.079442, abs=1e-5)
    loss.backward()
    assert all(torch.isfinite(x.grad).all() for x in (anchor, positive, negatives))


def test_mnr_scale_and_temperature():
    loss_fn = MultipleNegativesRankingLoss()
    assert loss_fn.scale == 20.0 and loss_fn.temperature == pytest.approx(0.05)
    assert MultipleNegativesRankingLoss(scale=50).temperature == pytest.approx(0.02)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), None])
def test_mnr_invalid_scale(scale):
    with pytest.raises(ValueError, match="scale must be"):
        MultipleNegativesRankingLoss(scale=scale)


# ----------------------------------------------------------------------------- shape errors


def test_shape_mismatch_messages_name_the_shapes():
    anchor = torch.zeros(4, 8)
    triplet, mnr = TripletLoss(), MultipleNegativesRankingLoss()
    for loss_fn in (triplet, mnr):
        with pytest.raises(ValueError, match=r"\(4, 8\).*\(4, 7\)"):
            loss_fn(anchor, torch.zeros(4, 7), torch.zeros(4, 8))
        with pytest.raises(ValueError, match=r"\(4, 8\).*\(3, 8\)"):
            loss_fn(anchor, torch.zeros(3, 8), torch.zeros(4, 8))
        with pytest.raises(ValueError, match=r"\(4, 8\).*\(3, 2, 8\)"):
            loss_fn(anchor, anchor, torch.zeros(3, 2, 8))
        with pytest.raises(ValueError, match=r"\(4, 8\).*\(4, 2, 6\)"):
            loss_fn(anchor, anchor, torch.zeros(4, 2, 6))
        with pytest.raises(ValueError, match=r"anchor must have shape \(B, D\), got \(8,\)"):
            loss_fn(torch.zeros(8), torch.zeros(8), torch.zeros(8))
        with pytest.raises(ValueError, match=r"empty batch"):
            loss_fn(torch.zeros(0, 8), torch.zeros(0, 8), torch.zeros(0, 8))
        with pytest.raises(ValueError, match="float"):
            loss_fn(torch.zeros(4, 8, dtype=torch.long), anchor, anchor)
    with pytest.raises(ValueError, match=r"K = 0.*\(4, 0, 8\)"):
        triplet(anchor, anchor, torch.zeros(4, 0, 8))
    with pytest.raises(ValueError, match="negative must be a torch.Tensor"):
        triplet(anchor, anchor, None)


# ----------------------------------------------------------------------------- build_loss


def test_build_loss():
    loss_fn = build_loss("triplet", distance="cosine", margin=0.3)
    assert isinstance(loss_fn, TripletLoss) and loss_fn.margin == 0.3 and loss_fn.distance.name == "cosine"
    assert isinstance(build_loss("MNR", scale=30.0), MultipleNegativesRankingLoss)
    assert build_loss("mnr").scale == 20.0


def test_build_loss_errors_list_valid_choices():
    with pytest.raises(ConfigError, match=r"unknown loss 'contrastive'.*'batch-all'.*'ladder'.*'mnr', 'mnr-symmetric'.*'triplet'"):
        build_loss("contrastive")
    with pytest.raises(ConfigError, match=r"\['tau'\].*'mnr'.*\['scale', 'temperature', 'symmetric'\]"):
        build_loss("mnr", tau=0.05)
    with pytest.raises(ConfigError, match=r"\['distance', 'margin', 'soft_margin', 'swap', 'reduction'\]"):
        build_loss("triplet", triplet_margin=1.0)
    with pytest.raises(ConfigError, match="can never be met"):
        build_loss("triplet", distance="cosine", margin=3.0)
    with pytest.raises(ConfigError, match="scale must be > 0"):
        build_loss("mnr", scale=0)


# ----------------------------------------------------------------------------- peer: sentence-transformers


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_triplet_equals_sentence_transformers(distance):
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric
    from sentence_transformers.sentence_transformer.losses import TripletLoss as STTripletLoss

    metric = {"euclidean": TripletDistanceMetric.EUCLIDEAN, "cosine": TripletDistanceMetric.COSINE}[distance]
    margin = {"euclidean": 1.5, "cosine": 0.4}[distance]
    anchor = _rand(16, 12, seed=7)
    positive = anchor + 0.8 * _rand(16, 12, seed=8)  # some triplets satisfied, some not
    negative = anchor + 1.0 * _rand(16, 12, seed=9)
    for dtype in DTYPES:
        a, p, n = (x.to(dtype) for x in (anchor, positive, negative))
        ours = TripletLoss(distance, margin=margin)(a, p, n)
        peer = STTripletLoss(None, distance_metric=metric, triplet_margin=margin)
        theirs = peer.compute_loss_from_embeddings([a, p, n], None)
        assert 0.0 < theirs.item()
        assert abs(ours.item() - theirs.item()) < 1e-6


@pytest.mark.parametrize("num_neg", [0, 1, 2])
def test_mnr_equals_sentence_transformers(num_neg):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss as STMNRLoss

    a0 = _rand(8, 12, seed=10)
    p0 = a0 + 0.8 * _rand(8, 12, seed=11)  # related pairs: a realistic loss size (~1), not ~15
    n0 = a0.unsqueeze(1) + 1.2 * _rand(8, num_neg, 12, seed=12)  # (B, K, D) harder than random
    for dtype in DTYPES:
        ours_in = [x.to(dtype).requires_grad_(True) for x in (a0, p0, n0)]
        theirs_in = [x.to(dtype).requires_grad_(True) for x in (a0, p0, n0)]
        ours = MultipleNegativesRankingLoss(scale=20.0)(*ours_in)
        a, p, n = theirs_in
        # ST takes one tensor per column and puts column 1's negatives first; the loss is the same.
        columns = [a, p] + [n[:, k] for k in range(num_neg)]  # K tensors of (B, D)
        theirs = STMNRLoss(None, scale=20.0).compute_loss_from_embeddings(columns, None)
        assert abs(ours.item() - theirs.item()) < 1e-6
        ours.backward()
        theirs.backward()
        for x, y in zip(ours_in[: 2 + (num_neg > 0)], theirs_in):
            torch.testing.assert_close(x.grad, y.grad, atol=1e-6, rtol=1e-5)
