"""LadderLoss: naive Python loop, hand-made values, reduction to the triplet loss, empty steps, errors."""

from __future__ import annotations

import math

import pytest
import torch

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.ladder import LadderLoss
from sbert_triplet.losses.triplet import TripletLoss

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _rand(*shape, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype)


def _py_cos(u, v):
    dot = sum(x * y for x, y in zip(u, v))
    norm = max(math.sqrt(sum(x * x for x in u)), 1e-12) * max(math.sqrt(sum(x * x for x in v)), 1e-12)
    return dot / norm


def naive_ladder(anchor, candidates, relevance, alphas, betas):
    """Lists in; (loss, pairs per step) out. Step l (1-based) has threshold t = L + 1 - l."""
    levels, total, counts = len(alphas), 0.0, []
    for step, (alpha, beta) in enumerate(zip(alphas, betas), start=1):
        threshold, terms = levels + 1 - step, []
        for a, cands, rels in zip(anchor, candidates, relevance):
            for c_i, r_i in zip(cands, rels):
                for c_j, r_j in zip(cands, rels):
                    if r_i >= threshold > r_j >= 0:
                        terms.append(max(0.0, alpha - _py_cos(a, c_i) + _py_cos(a, c_j)))
        counts.append(len(terms))
        total += beta * sum(terms) / len(terms) if terms else 0.0
    return total, counts


RELEVANCE = torch.tensor(  # (B=4, M=5): levels 0..3, -1 = padding; row 3 has no level-3 candidate
    [[3, 2, 1, 0, 0], [3, 0, 1, 2, -1], [0, 3, 0, 0, 0], [2, 2, 1, 0, -1]]
)


def _case(dtype, seed=0):
    anchor = _rand(4, 6, dtype=dtype, seed=seed)  # (B, D)
    # Candidates near the anchor, nearer for higher levels, so some pairs are satisfied, some not.
    noise = _rand(4, 5, 6, dtype=dtype, seed=seed + 1)  # (B, M, D)
    closeness = RELEVANCE.clamp_min(0).to(dtype).unsqueeze(2) * 0.3  # (B, M, 1)
    return anchor, anchor.unsqueeze(1) * closeness + noise  # (B, D), (B, M, D)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "alphas,betas", [((0.2, 0.1, 0.05), None), ((0.5, 0.3, 0.1), (1.0, 0.5, 2.0)), ((0.4, 0.4, 0.4), (1, 1, 1))]
)
def test_ladder_equals_naive_loop(dtype, alphas, betas):
    anchor, candidates = _case(dtype)
    loss_fn = LadderLoss(alphas, betas)
    loss = loss_fn(anchor, candidates, RELEVANCE)
    assert loss.dim() == 0 and loss.dtype == dtype
    expected, counts = naive_ladder(anchor.tolist(), candidates.tolist(), RELEVANCE.tolist(), alphas, loss_fn.betas)
    assert loss.item() == pytest.approx(expected, abs=TOL[dtype], rel=TOL[dtype])
    assert loss_fn.last_num_pairs == counts == [11, 18, 16]  # 4+3+4+0, 6+4+4+4, 6+3+4+3


def test_defaults_are_the_papers():
    loss_fn = LadderLoss()
    assert loss_fn.alphas == (0.2, 0.01) and loss_fn.betas == (1.0, 0.25) and loss_fn.num_levels == 2
    assert LadderLoss((0.3, 0.2, 0.1)).betas == (1.0, 0.25, 0.25)
    assert loss_fn.last_num_pairs == [0, 0]
    assert "alphas=[0.2, 0.01]" in repr(loss_fn)


def test_hand_made_two_level_ladder():
    # One anchor; candidate levels 2, 1, 0 with cosine 0.9, 0.85, 0.8 (unit vectors in 2-D).
    anchor = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    angles = torch.tensor([0.9, 0.85, 0.8], dtype=torch.float64).acos()
    candidates = torch.stack([angles.cos(), angles.sin()], dim=1).unsqueeze(0)  # (1, 3, 2)
    relevance = torch.tensor([[2, 1, 0]])
    loss_fn = LadderLoss(alphas=(0.2, 0.01), betas=(1.0, 0.25))
    # Step 1 (level 2 vs {1, 0}): (0.2 - 0.05) and (0.2 - 0.1); step 2 ({2, 1} vs 0): 0 and 0.
    expected = (0.15 + 0.1) / 2 + 0.25 * (0.0 + 0.0) / 2
    assert loss_fn(anchor, candidates, relevance).item() == pytest.approx(expected, abs=1e-12)
    assert loss_fn.last_num_pairs == [2, 2]


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_step_ladder_is_the_cosine_triplet_loss(dtype):
    anchor, candidates = _case(dtype, seed=5)
    relevance = torch.tensor([[1, 0, 0, 0, 0]] * 4)  # the first candidate is the positive
    ladder = LadderLoss(alphas=(0.3,), betas=(1.0,))(anchor, candidates, relevance)
    triplet = TripletLoss("cosine", margin=0.3)(anchor, candidates[:, 0], candidates[:, 1:])
    assert ladder.item() == pytest.approx(triplet.item(), abs=TOL[dtype])


def test_no_valid_pair_is_exactly_zero_with_zero_gradients():
    anchor = _rand(2, 4).requires_grad_(True)
    candidates = _rand(2, 3, 4, seed=1).requires_grad_(True)
    loss_fn = LadderLoss()
    for relevance in ([[0, 0, 0], [2, 2, -1]], [[1, 1, 1], [-1, -1, -1]]):
        loss = loss_fn(anchor, candidates, torch.tensor(relevance))
        assert loss.item() == 0.0 and loss.requires_grad and loss_fn.last_num_pairs == [0, 0]
        anchor.grad = candidates.grad = None
        loss.backward()
        assert torch.equal(anchor.grad, torch.zeros_like(anchor))
        assert torch.equal(candidates.grad, torch.zeros_like(candidates))


def test_satisfied_ladder_and_padding():
    anchor = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]]])  # cos 1, 0, -1, 1
    loss_fn = LadderLoss(alphas=(0.5, 0.5))
    # Levels 2, 1, 0 are 1.0 apart in cosine: every margin met. The padded copy would violate.
    assert loss_fn(anchor, candidates, torch.tensor([[2, 1, 0, -1]])).item() == 0.0
    assert loss_fn(anchor, candidates, torch.tensor([[2, 1, 0, 0]])).item() > 0.0


@pytest.mark.parametrize(
    "alphas,betas,match",
    [
        ((), None, "non-empty"),
        ("0.2", None, "non-empty"),
        ((0.2, -0.1), None, r"alphas must be a number in \[0, 2.0\)"),
        ((2.0,), None, r"\[0, 2.0\)"),
        ((0.2, 0.1), (1.0,), "one weight per step"),
        ((0.2,), (float("nan"),), "betas"),
        ((0.2,), (-1.0,), "betas"),
    ],
)
def test_invalid_configuration(alphas, betas, match):
    with pytest.raises(ConfigError, match=match):
        LadderLoss(alphas, betas)


def test_invalid_inputs_name_the_shapes():
    loss_fn = LadderLoss()
    anchor, candidates, relevance = torch.zeros(2, 4), torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\(2, M, 4\).*\(2, 3, 5\)"):
        loss_fn(anchor, torch.zeros(2, 3, 5), relevance)
    with pytest.raises(ValueError, match=r"\(B, M\) = \(2, 3\).*\(2, 4\)"):
        loss_fn(anchor, candidates, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        loss_fn(anchor, candidates, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"0\.\.2.*\[0, 3\]"):
        loss_fn(anchor, candidates, torch.tensor([[0, 1, 3], [0, 0, 0]]))
    with pytest.raises(ValueError, match="-1 for padding"):
        loss_fn(anchor, candidates, torch.tensor([[0, 1, -2], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"anchor must have shape \(B, D\)"):
        loss_fn(torch.zeros(4), candidates, relevance)
