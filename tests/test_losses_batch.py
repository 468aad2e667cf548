"""Label-based batch triplet losses: naive loops, sentence-transformers equality, on-purpose differences,
degenerate batches and input checks."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from naive import py_cos as _py_cos
from naive import py_dot as _py_dot
from naive import rand as _rand

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.batch_all_triplet import BatchAllTripletLoss
from sbert_triplet.losses.batch_hard_soft_margin_triplet import BatchHardSoftMarginTripletLoss
from sbert_triplet.losses.batch_hard_triplet import BatchHardTripletLoss
from sbert_triplet.losses.batch_semi_hard_triplet import BatchSemiHardTripletLoss

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
DISTANCES = ["euclidean", "squared_euclidean", "cosine", "dot"]
MARGIN = {"euclidean": 1.0, "squared_euclidean": 4.0, "cosine": 0.3, "dot": 2.0}
LOSSES = [BatchAllTripletLoss, BatchHardTripletLoss, BatchSemiHardTripletLoss, BatchHardSoftMarginTripletLoss]


PY_ORIENTED = {  # distance-like: smaller = closer
    "euclidean": lambda u, v: math.sqrt(sum((x - y) ** 2 for x, y in zip(u, v))),
    "squared_euclidean": lambda u, v: sum((x - y) ** 2 for x, y in zip(u, v)),
    "cosine": lambda u, v: 1.0 - _py_cos(u, v),
    "dot": lambda u, v: -_py_dot(u, v),
}


def _pos_neg(emb, labels, dist, a):
    pos = [(p, dist(emb[a], emb[p])) for p in range(len(emb)) if p != a and labels[p] == labels[a]]
    neg = [dist(emb[a], emb[n]) for n in range(len(emb)) if labels[n] != labels[a]]
    return pos, neg


def naive(kind, emb, labels, distance, margin):
    """Lists in; (loss, count) out. count: triplets (all), anchors (hard), positive pairs (semi-hard)."""
    dist, terms, active = PY_ORIENTED[distance], [], 0
    for a in range(len(emb)):
        pos, neg = _pos_neg(emb, labels, dist, a)
        if not pos or not neg:
            continue
        if kind in ("hard", "soft"):
            gap = max(d for _, d in pos) - min(neg)
            terms.append(math.log1p(math.exp(gap)) if kind == "soft" else max(gap + margin, 0.0))
            continue
        for _, d_ap in pos:
            if kind == "semi":
                beyond = [d for d in neg if d > d_ap]
                terms.append(max(d_ap - (min(beyond) if beyond else max(neg)) + margin, 0.0))
            else:
                terms.extend(max(d_ap - d_an + margin, 0.0) for d_an in neg)
    if not terms:
        return 0.0, 0
    if kind == "all":
        active = sum(t > 0 for t in terms)
        return (sum(terms) / active if active else 0.0), len(terms)
    return sum(terms) / len(terms), len(terms)


KINDS = {BatchAllTripletLoss: "all", BatchHardTripletLoss: "hard", BatchSemiHardTripletLoss: "semi",
         BatchHardSoftMarginTripletLoss: "soft"}  # fmt: skip


def _build(cls, distance="euclidean", margin=None):
    if cls is BatchHardSoftMarginTripletLoss:
        return cls(distance)
    return cls(distance, margin=MARGIN[distance] if margin is None else margin)


def _pk_batch(dtype, num_labels=4, per_label=4, dim=12, seed=0):
    labels = torch.arange(num_labels).repeat_interleave(per_label)  # (P*K,)
    labels = labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))]
    return _rand(labels.numel(), dim, dtype=dtype, seed=seed), labels


# Singletons (7, 9) have no positive; they are still negatives of the other anchors.
MIXED_LABELS = torch.tensor([3, 1, 3, 7, 1, 1, 3, 9, 1, 3])


# ----------------------------------------------------------------------------- naive loop


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("cls", LOSSES)
def test_batch_losses_equal_naive_loop(dtype, distance, cls):
    for emb, labels in [_pk_batch(dtype, seed=1), (_rand(10, 5, dtype=dtype, seed=2), MIXED_LABELS)]:
        loss_fn = _build(cls, distance)
        loss = loss_fn(emb, labels)
        assert loss.dim() == 0 and loss.dtype == dtype
        expected, count = naive(KINDS[cls], emb.tolist(), labels.tolist(), distance, loss_fn.margin)
        assert loss.item() == pytest.approx(expected, abs=TOL[dtype], rel=TOL[dtype])
        assert loss_fn.last_num_triplets == count and count > 0


# ----------------------------------------------------------------------------- peer: sentence-transformers


def _st(cls):
    from sentence_transformers.sentence_transformer import losses

    peer = getattr(losses, cls.__name__)
    return peer(None) if cls is BatchHardSoftMarginTripletLoss else peer(None, margin=5.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", LOSSES)
def test_batch_losses_equal_sentence_transformers(dtype, cls):
    batches = [_pk_batch(dtype, seed=3), _pk_batch(dtype, num_labels=3, per_label=2, seed=4)]
    if cls is BatchAllTripletLoss:  # same definition also with singleton labels
        batches.append((_rand(10, 12, dtype=dtype, seed=5), MIXED_LABELS))
    for emb, labels in batches:
        ours_in, theirs_in = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
        ours = _build(cls, margin=5.0)(ours_in, labels)  # sentence-transformers' default margin
        theirs = _st(cls).compute_loss_from_embeddings([theirs_in], labels)
        assert theirs.item() > 0 and abs(ours.item() - theirs.item()) < 1e-6
        ours.backward()
        theirs.backward()
        tol = 1e-5 if dtype == torch.float32 else 1e-9
        torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=tol, rtol=tol)


def test_batch_hard_differs_from_sentence_transformers_on_anchors_without_a_triplet():
    # 1-D points: labels 0 at 0 and 1, label 1 at 3 (no positive), label 2 at 1.5 (no positive).
    emb = torch.tensor([[0.0], [1.0], [3.0], [1.5]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2])
    margin = 5.0
    ours = BatchHardTripletLoss(margin=margin)
    # Only anchors 0 and 1 have a triplet: (1 - 1.5 + 5) and (1 - 0.5 + 5).
    assert ours(emb, labels).item() == pytest.approx((4.5 + 5.5) / 2)
    assert ours.last_num_triplets == 2
    # sentence-transformers also averages anchors 2 and 3, with d(a, p) = 0: (0 - 1.5 + 5), (0 - 0.5 + 5).
    theirs = _st(BatchHardTripletLoss).compute_loss_from_embeddings([emb], labels)
    assert theirs.item() == pytest.approx((4.5 + 5.5 + 3.5 + 4.5) / 4)
    soft = BatchHardSoftMarginTripletLoss()(emb, labels).item()
    theirs_soft = _st(BatchHardSoftMarginTripletLoss).compute_loss_from_embeddings([emb], labels).item()
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert soft == pytest.approx((sp(-0.5) + sp(0.5)) / 2)
    assert theirs_soft == pytest.approx((sp(-0.5) + sp(0.5) + sp(-1.5) + sp(-0.5)) / 4)


@pytest.mark.parametrize("cls", [BatchHardTripletLoss, BatchSemiHardTripletLoss, BatchHardSoftMarginTripletLoss])
def test_one_label_batch_costs_nothing_here_but_not_in_sentence_transformers(cls):
    emb, labels = _rand(4, 3, seed=6), torch.zeros(4, dtype=torch.long)
    with pytest.warns(UserWarning, match="no valid triplet"):
        assert _build(cls, margin=5.0)(emb, labels).item() == 0.0
    theirs = _st(cls).compute_loss_from_embeddings([emb], labels).item()
    assert theirs > 0.5  # margin 5 (hard), d(a, p) + 5 (semi-hard), log 2 (soft)


def test_batch_all_counts_tiny_losses_as_active_unlike_sentence_transformers():
    # Label 0 at 0 and 1e-17, label 1 at 0 and 5; margin 0. Triplet (0, 1, 2) has loss 1e-17,
    # which ST does not count as active (threshold 1e-16); two triplets have loss 5.
    emb = torch.tensor([[0.0, 0.0], [1e-17, 0.0], [0.0, 0.0], [5.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    ours = BatchAllTripletLoss(margin=0.0)
    assert ours(emb, labels).item() == pytest.approx(10.0 / 3) and ours.last_num_active == 3
    theirs = _st(BatchAllTripletLoss)
    theirs.triplet_margin = 0.0
    assert theirs.compute_loss_from_embeddings([emb], labels).item() == pytest.approx(10.0 / 2)


# ----------------------------------------------------------------------------- degenerate batches


@pytest.mark.parametrize("cls", LOSSES)
@pytest.mark.parametrize("labels", [[2, 2, 2, 2, 2], [0, 1, 2, 3, 4]], ids=["no-negative", "no-positive"])
def test_batch_without_triplets_is_zero_with_one_warning(cls, labels):
    loss_fn = _build(cls)
    emb = _rand(5, 4, seed=7).requires_grad_(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [loss_fn(emb, torch.tensor(labels)) for _ in range(3)]
    assert len(caught) == 1 and "P x K sampler" in str(caught[0].message)
    for loss in losses:
        assert loss.item() == 0.0 and torch.isfinite(loss) and loss.requires_grad
    assert loss_fn.last_num_triplets == 0
    losses[0].backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


@pytest.mark.parametrize("cls", LOSSES)
def test_satisfied_and_constant_batches(cls):
    # Two tight, far-apart clusters: every margin is met (soft margin: tiny but positive).
    emb = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    loss = _build(cls, margin=0.5)(emb, labels)
    if cls is BatchHardSoftMarginTripletLoss:
        assert 0 < loss.item() < 1e-3
    else:
        assert loss.item() == 0.0
        loss.backward()
        assert torch.equal(emb.grad, torch.zeros_like(emb))
    constant = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    value = _build(cls, margin=0.5)(constant, labels)
    assert value.item() == pytest.approx(math.log(2.0) if cls is BatchHardSoftMarginTripletLoss else 0.5)
    value.backward()
    assert torch.isfinite(constant.grad).all()


# ----------------------------------------------------------------------------- configuration and inputs


@pytest.mark.parametrize("cls", LOSSES)
def test_invalid_inputs_name_the_shapes(cls):
    loss_fn = _build(cls)
    emb = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"shape \(B,\) = \(4,\).*\(4, 1\)"):
        loss_fn(emb, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        loss_fn(emb, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        loss_fn(emb, torch.zeros(4))
    with pytest.raises(ValueError, match="float"):
        loss_fn(emb.long(), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        loss_fn(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


@pytest.mark.parametrize("cls", [BatchAllTripletLoss, BatchHardTripletLoss, BatchSemiHardTripletLoss])
def test_margin_checks(cls):
    assert cls().margin == 0.5 and cls().distance.name == "euclidean"
    with pytest.raises(ConfigError, match="margin must be >= 0"):
        cls(margin=-1.0)
    with pytest.raises(ConfigError, match="can never be met"):
        cls("cosine", margin=2.0)
    with pytest.raises(ConfigError, match="unit-normalised"):
        cls(margin=2.0).check_margin(normalized=True)
    assert "margin=0.5" in repr(cls())


def test_soft_margin_has_no_margin_argument():
    loss_fn = BatchHardSoftMarginTripletLoss("cosine")
    loss_fn.check_margin(normalized=True)
    assert "margin" not in repr(loss_fn)
    with pytest.raises(TypeError):
        BatchHardSoftMarginTripletLoss(margin=0.5)
