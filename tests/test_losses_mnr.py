"""MNR extensions: temperature, symmetric direction, false-negative masks (and their text-based builder)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses import MultipleNegativesRankingLoss as MNR
from sbert_triplet.losses import MultipleNegativesSymmetricRankingLoss, build_loss, false_negative_masks

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- naive loop and peer


def _py_cos(u, v):
    return sum(x * y for x, y in zip(u, v)) / (math.dist(u, [0] * len(u)) * math.dist(v, [0] * len(v)))


def _ce(logits, target, keep):
    kept = [s for s, k in zip(logits, keep) if k]
    top = max(kept)
    return top + math.log(sum(math.exp(s - top) for s in kept)) - logits[target]


def naive_mnr(anchor, positive, negatives, scale, symmetric=False, cand_mask=None, anchor_mask=None):
    """Lists of floats in, one float out; masks are lists of lists of bools (True = keep)."""
    candidates = list(positive) + [n for negs in (negatives or []) for n in negs]
    batch = len(anchor)
    cand_mask = cand_mask or [[True] * len(candidates)] * batch
    anchor_mask = anchor_mask or [[True] * batch] * batch
    forward = sum(_ce([scale * _py_cos(a, c) for c in candidates], i, cand_mask[i]) for i, a in enumerate(anchor))
    if not symmetric:
        return forward / batch
    backward = sum(_ce([scale * _py_cos(p, a) for a in anchor], i, anchor_mask[i]) for i, p in enumerate(positive))
    return (forward + backward) / (2 * batch)


def _realistic(batch=8, dim=12, num_neg=2, seed=10):
    """Related pairs (anchor + noise) so the loss is ~1, not ~15; negatives harder than random."""
    _rand = lambda *shape, seed: torch.randn(*shape, generator=torch.Generator().manual_seed(seed),  # noqa: E731
                                             dtype=torch.float64)
    a = _rand(batch, dim, seed=seed)
    p = a + 0.8 * _rand(batch, dim, seed=seed + 1)
    n = a.unsqueeze(1) + 1.2 * _rand(batch, num_neg, dim, seed=seed + 2)  # (B, K, D)
    return a, p, n


def _st_losses(scale=20.0):
    """sentence-transformers' MNR and (deprecated, same maths as its MNR in both directions) symmetric MNR."""
    from sentence_transformers.sentence_transformer import losses

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        symmetric = losses.MultipleNegativesSymmetricRankingLoss(None, scale=scale)
    return losses.MultipleNegativesRankingLoss(None, scale=scale), symmetric


def _random_mask(rows, cols, seed):
    mask = torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed)) > 0.4  # (rows, cols)
    mask[torch.arange(rows), torch.arange(rows)] = True
    return mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_neg", [0, 1, 2])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_mnr_equals_naive_loop(dtype, num_neg, symmetric, masked):
    a, p, n = (x.to(dtype) for x in _realistic(num_neg=num_neg))
    batch = a.shape[0]
    negatives = n if num_neg else None
    cand = _random_mask(batch, batch * (1 + num_neg), seed=1) if masked else None
    anc = _random_mask(batch, batch, seed=2) if masked else None
    loss = MNR(scale=20.0, symmetric=symmetric)(a, p, negatives, cand, anc)
    assert loss.dim() == 0 and loss.dtype == dtype
    expected = naive_mnr(a.tolist(), p.tolist(), None if negatives is None else n.tolist(), 20.0, symmetric,
                         None if cand is None else cand.tolist(), None if anc is None else anc.tolist())
    assert loss.item() == pytest.approx(expected, abs=TOL[dtype], rel=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_neg", [0, 1, 2])
def test_symmetric_equals_sentence_transformers(dtype, num_neg):
    a0, p0, n0 = _realistic(num_neg=num_neg)
    ours_in = [x.to(dtype).requires_grad_(True) for x in (a0, p0, n0)]
    theirs_in = [x.to(dtype).requires_grad_(True) for x in (a0, p0, n0)]
    ours = MultipleNegativesSymmetricRankingLoss(scale=20.0)(*ours_in[:2], ours_in[2] if num_neg else None)
    a, p, n = theirs_in
    theirs = _st_losses()[1].compute_loss_from_embeddings([a, p] + [n[:, k] for k in range(num_neg)], None)
    assert 0.1 < theirs.item() < 10.0  # a realistic loss size
    assert abs(ours.item() - theirs.item()) < 1e-6
    ours.backward()
    theirs.backward()
    for x, y in zip(ours_in[: 2 + (num_neg > 0)], theirs_in):
        torch.testing.assert_close(x.grad, y.grad, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- exact values


def test_constant_encoder_values():
    emb = torch.ones(8, dtype=torch.float64)
    anchor, positive = emb.expand(4, 8).clone(), emb.expand(4, 8).clone()
    negatives = emb.expand(4, 1, 8).clone()  # (B, K=1, D)
    mnr, sym = MNR(), MultipleNegativesSymmetricRankingLoss()
    assert mnr(anchor, positive).item() == pytest.approx(math.log(4), abs=1e-12)  # 1.386294
    assert mnr(anchor, positive, negatives).item() == pytest.approx(math.log(8), abs=1e-12)  # 2.079442
    assert sym(anchor, positive).item() == pytest.approx(math.log(4), abs=1e-12)
    # forward sees 8 candidates, backward 4 anchors: (ln 8 + ln 4) / 2
    assert sym(anchor, positive, negatives).item() == pytest.approx(2.5 * LN2, abs=1e-12)
    full = torch.ones(4, 8, dtype=torch.bool)
    assert mnr(anchor, positive, negatives, full).item() == pytest.approx(math.log(8), abs=1e-12)


QUERIES = ["q0", "q1", "q2", "q3"]
POSITIVES = ["p0", "d", "p2", "d"]  # rows 1 and 3 share the positive text "d"
TOPIC = {"q0": 1, "p0": 1, "q1": 0, "q3": 0, "d": 0, "q2": 2, "p2": 2}  # q1, q3, d: one unit vector


def toy_encode(texts, dtype=torch.float64):
    """Each text -> the unit vector of its topic; different topics are orthogonal.  -> (N, 8)"""
    return torch.eye(8, dtype=dtype)[[TOPIC[t] for t in texts]]  # (N, 8)


def test_false_negative_masks_on_shared_positive():
    cand, anc = false_negative_masks(QUERIES, POSITIVES)
    expected = torch.ones(4, 4, dtype=torch.bool)
    expected[1, 3] = expected[3, 1] = False  # row 1 drops row 3's "d", row 3 drops row 1's
    assert torch.equal(cand, expected)
    # backward: positive "d" of row 1 is also row 3's labelled positive, so anchor q3 is not a negative for it
    assert torch.equal(anc, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shared_positive_exact_values(dtype):
    anchor, positive = toy_encode(QUERIES, dtype), toy_encode(POSITIVES, dtype)
    cand, anc = false_negative_masks(QUERIES, POSITIVES)
    mnr = MNR(scale=20.0)
    # rows 1 and 3 each see two candidates with logit 20 -> ln 2 each; rows 0, 2 ~ 0 -> ln 2 / 2
    assert mnr(anchor, positive).item() == pytest.approx(LN2 / 2, abs=1e-6)  # 0.346574
    assert mnr(anchor, positive, candidate_mask=cand).item() < 1e-6
    sym = MultipleNegativesSymmetricRankingLoss(scale=20.0)
    assert sym(anchor, positive).item() == pytest.approx(LN2 / 2, abs=1e-6)  # both directions ln 2 / 2
    assert sym(anchor, positive, candidate_mask=cand, anchor_mask=anc).item() < 1e-6
    # masking one direction only leaves the other's false negatives: (0 + ln 2 / 2) / 2
    assert sym(anchor, positive, candidate_mask=cand).item() == pytest.approx(LN2 / 4, abs=1e-6)


def test_masking_differs_from_sentence_transformers_on_purpose():
    """ST has no text-based masking: it charges ln 2 to rows 1 and 3 for the duplicate "d"."""
    anchor, positive = toy_encode(QUERIES), toy_encode(POSITIVES)
    cand, anc = false_negative_masks(QUERIES, POSITIVES)
    st_mnr, st_sym = _st_losses()
    for ours, peer, masks in [
        (MNR(), st_mnr, {"candidate_mask": cand}),
        (MultipleNegativesSymmetricRankingLoss(), st_sym, {"candidate_mask": cand, "anchor_mask": anc}),
    ]:
        theirs = peer.compute_loss_from_embeddings([anchor, positive], None).item()
        assert theirs == pytest.approx(LN2 / 2, abs=1e-6)
        assert ours(anchor, positive).item() == pytest.approx(theirs, abs=1e-9)  # unmasked: identical
        assert ours(anchor, positive, **masks).item() < 1e-6  # masked: the false negatives are gone


def test_masked_candidate_gets_no_gradient():
    a, p, n = (x.requires_grad_(True) for x in _realistic(num_neg=1))
    batch = a.shape[0]
    mask = torch.ones(batch, 2 * batch, dtype=torch.bool)
    mask[:, batch + 3] = False  # row 3's hard negative, removed from every row
    loss = MNR(symmetric=True)(a, p, n, mask)
    loss.backward()
    assert torch.equal(n.grad[3], torch.zeros_like(n.grad[3]))
    assert all(torch.isfinite(x.grad).all() for x in (a, p, n))
    assert n.grad[2].abs().sum() > 0


# ----------------------------------------------------------------------------- scale / temperature / build


def test_temperature_is_one_over_scale():
    a, p, n = _realistic()
    by_scale = MNR(scale=20.0, symmetric=True)(a, p, n)
    by_temperature = MNR(temperature=1 / 20.0, symmetric=True)(a, p, n)
    assert by_temperature.item() == pytest.approx(by_scale.item(), abs=1e-12)
    loss_fn = MultipleNegativesSymmetricRankingLoss(temperature=0.02)
    assert loss_fn.scale == pytest.approx(50.0) and loss_fn.temperature == pytest.approx(0.02)
    assert MNR(scale=None, temperature=0.05).scale == pytest.approx(20.0)


@pytest.mark.parametrize("scale", [20.0, 30.0, 20])
def test_scale_and_temperature_together_is_an_error(scale):
    with pytest.raises(ConfigError, match="either scale or temperature, not both"):
        MNR(scale=scale, temperature=0.05)
    with pytest.raises(ConfigError, match="not both"):
        build_loss("mnr-symmetric", scale=scale, temperature=0.05)


@pytest.mark.parametrize("temperature", [0.0, -0.05, float("nan"), float("inf"), "0.05", True])
def test_invalid_temperature_and_symmetric(temperature):
    with pytest.raises(ConfigError, match="temperature must be"):
        MNR(temperature=temperature)
    with pytest.raises(ConfigError, match="symmetric must be True or False"):
        MNR(symmetric="yes")


def test_build_loss_mnr_symmetric():
    loss_fn = build_loss("MNR-Symmetric", temperature=0.05)
    assert isinstance(loss_fn, MultipleNegativesSymmetricRankingLoss) and loss_fn.symmetric
    assert loss_fn.scale == pytest.approx(20.0) and "symmetric=True" in repr(loss_fn)
    assert build_loss("mnr", symmetric=True).symmetric and not build_loss("mnr").symmetric
    assert build_loss("mnr", temperature=0.1).scale == pytest.approx(10.0)
    with pytest.raises(ConfigError, match=r"\['symmetric'\].*'mnr-symmetric'"):
        build_loss("mnr-symmetric", symmetric=False)


def test_mask_errors_name_the_problem():
    a, p, n = _realistic(batch=4, num_neg=1)
    loss_fn = MNR(symmetric=True)
    with pytest.raises(ValueError, match=r"candidate_mask must have shape \(4, 8\).*got \(4, 4\)"):
        loss_fn(a, p, n, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="candidate_mask must have dtype torch.bool"):
        loss_fn(a, p, n, torch.ones(4, 8))
    with pytest.raises(ValueError, match="anchor_mask must be a torch.Tensor"):
        loss_fn(a, p, n, None, [[True] * 4] * 4)
    bad = torch.ones(4, 8, dtype=torch.bool)
    bad[2, 2] = False
    with pytest.raises(ValueError, match=r"candidate_mask\[i, i\] must be True.*rows \[2\]"):
        loss_fn(a, p, n, bad)
    bad_anchor = torch.ones(4, 4, dtype=torch.bool)
    bad_anchor[0, 0] = False
    with pytest.raises(ValueError, match=r"anchor_mask\[i, i\].*rows \[0\]"):
        loss_fn(a, p, n, None, bad_anchor)
    with pytest.raises(ValueError, match=r"anchor_mask must have shape \(4, 4\)"):  # checked when not symmetric too
        MNR()(a, p, n, None, torch.ones(4, 5, dtype=torch.bool))


# ----------------------------------------------------------------------------- false_negative_masks


def test_false_negative_masks_hard_negatives():
    anchors = ["q0", "q1", "q2"]
    positives = ["x", "y", "z"]
    negatives = [["y", "n0"], ["y", "x"], ["n2", "n3"]]  # columns 3..8: y n0 | y x | n2 n3
    cand, anc = false_negative_masks(anchors, positives, negatives)
    assert cand.shape == (3, 9) and cand.dtype == torch.bool and anc.shape == (3, 3)
    expected = torch.ones(3, 9, dtype=torch.bool)
    expected[0, 6] = False  # row 0: row 1's hard negative "x" is row 0's positive
    expected[1, 3] = expected[1, 5] = False  # row 1: "y" as hard negative, its own one included
    assert torch.equal(cand, expected)
    assert anc.all()


def test_false_negative_masks_same_anchor_two_positives():
    anchors = ["q", "r", "q"]
    positives = ["a", "b", "c"]  # (q, a) and (q, c): a and c both answer q
    cand, anc = false_negative_masks(anchors, positives)
    expected = torch.ones(3, 3, dtype=torch.bool)
    expected[0, 2] = expected[2, 0] = False
    assert torch.equal(cand, expected)
    assert torch.equal(anc, expected)  # anchor "q" identical for rows 0 and 2


def test_false_negative_masks_exact_equality_and_errors():
    cand, _ = false_negative_masks(["q0", "q1"], ["Dog", "dog "])  # no normalisation: different texts
    assert cand.all()
    empty_c, empty_a = false_negative_masks([], [])
    assert empty_c.shape == (0, 0) and empty_a.shape == (0, 0)
    with pytest.raises(ValueError, match="2 anchors and 3 positives"):
        false_negative_masks(["a", "b"], ["c", "d", "e"])
    with pytest.raises(ValueError, match="same number K.*\\[1, 2\\]"):
        false_negative_masks(["a", "b"], ["c", "d"], [["n"], ["n", "m"]])
    with pytest.raises(ValueError, match="one list per row"):
        false_negative_masks(["a", "b"], ["c", "d"], [["n"]])


def test_false_negative_masks_large_batch_matches_loop():
    gen = torch.Generator().manual_seed(3)
    batch = 3000
    anchors = [f"q{i}" for i in torch.randint(0, 2900, (batch,), generator=gen).tolist()]
    positives = [f"p{i}" for i in torch.randint(0, 2800, (batch,), generator=gen).tolist()]
    negatives = [[f"p{i}"] for i in torch.randint(0, 5000, (batch,), generator=gen).tolist()]
    cand, anc = false_negative_masks(anchors, positives, negatives)  # ~0.2 s: hash maps, no B^2 loop
    assert cand.shape == (batch, 2 * batch)
    # spot-check against the definition for rows that have false negatives
    texts = positives + [n[0] for n in negatives]
    for i in [i for i in range(batch) if not cand[i].all()][:20] + [0, 1]:
        own = {positives[k] for k in range(batch) if anchors[k] == anchors[i]}
        want = [j == i or texts[j] not in own for j in range(2 * batch)]
        assert cand[i].tolist() == want
        partners = {anchors[k] for k in range(batch) if positives[k] == positives[i]}
        assert anc[i].tolist() == [j == i or anchors[j] not in partners for j in range(batch)]
