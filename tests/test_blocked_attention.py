"""Blocked attention computes eager attention: the same outputs and gradients, block by block.

Checked in float64 against ``eager_attention(..., blocked=False)`` (no dropout) and against
the explicit formula softmax(s Q K^T + mask) * M @ V with the masks the blocks drew
(dropout on), for every mask form, with blocks of several texts, of one text, and of a
few heads of one text; on one thread and on two; under bf16 autocast.
"""

import math

import pytest
import torch

import sbert_triplet.training.blocked_attention as blocked_module
from sbert_triplet.training.blocked_attention import _blocks, blocked_attention
from sbert_triplet.training.fast_dropout import dropout_mask, eager_attention

B, H, LQ, D = 5, 4, 6, 3


def _inputs(seed=0, dtype=torch.float64, lq=LQ, lk=LQ):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, lq, D, generator=g, dtype=dtype)
    k, v = (torch.randn(B, H, lk, D, generator=g, dtype=dtype) for _ in range(2))
    return [t.requires_grad_() for t in (q, k, v)]


def _masks(lq=LQ, lk=LQ):
    keys = torch.ones(B, 1, 1, lk, dtype=torch.bool)
    keys[1, ..., 4:] = False
    keys[3, ..., 2:] = False
    full = torch.rand(B, 1, lq, lk, generator=torch.Generator().manual_seed(1)) > 0.3
    full[..., 0] = True  # every query attends to something
    additive = torch.zeros(B, 1, 1, lk, dtype=torch.float64).masked_fill(~keys, -1e9)
    return {"none": None, "key padding": keys, "full": full, "additive": additive}


def _grads(fn, inputs, weight):
    out = fn(*inputs)
    (out * weight).sum().backward()
    grads = [t.grad.clone() for t in inputs]
    for t in inputs:
        t.grad = None
    return out.detach(), grads


# block sizes: all texts in one block, two texts per block, one text per block, two heads of one text
BLOCK_SIZES = [10_000, 2 * H * LQ * LQ, H * LQ * LQ, 2 * LQ * LQ]


@pytest.mark.parametrize("block_values", BLOCK_SIZES)
@pytest.mark.parametrize("mask_name", ["none", "key padding", "full", "additive"])
def test_without_dropout_equals_eager_attention(monkeypatch, block_values, mask_name):
    monkeypatch.setattr(blocked_module, "BLOCK_VALUES", block_values)
    inputs = _inputs()
    mask = _masks()[mask_name]
    weight = torch.randn(B, H, LQ, D, dtype=torch.float64)
    ours, ours_grads = _grads(lambda q, k, v: blocked_attention(q, k, v, mask, 0.7, 0.0), inputs, weight)
    ref, ref_grads = _grads(lambda q, k, v: eager_attention(q, k, v, mask, 0.7, 0.0, blocked=False), inputs, weight)
    assert torch.allclose(ours, ref, atol=1e-12, rtol=0)
    for a, b in zip(ours_grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("block_values", BLOCK_SIZES)
@pytest.mark.parametrize("mask_name", ["key padding", "full"])
def test_with_dropout_equals_the_formula_with_the_blocks_masks(monkeypatch, block_values, mask_name):
    """Each block's mask is recorded as it is drawn; the reference applies the same masks to the whole matrix."""
    monkeypatch.setattr(blocked_module, "BLOCK_VALUES", block_values)
    p = 0.3
    drawn = torch.zeros(B, H, LQ, LQ, dtype=torch.float64)
    blocks = _blocks(B, H, LQ, LQ)
    calls = []

    def recording_mask(shape, p, seed=None, parallel=True):
        mask = dropout_mask(shape, p, seed=seed, parallel=parallel)
        index = seed[1]  # (call seed, block index)
        if not any(c[1] == index for c in calls):  # forward draws; backward reuses the saved mask
            texts, heads = blocks[index]
            drawn[texts, heads] = mask.view(drawn[texts, heads].shape).double()
        calls.append(seed)
        return mask

    monkeypatch.setattr(blocked_module, "dropout_mask", recording_mask)
    inputs = _inputs(2)
    mask = _masks()[mask_name]
    weight = torch.randn(B, H, LQ, D, dtype=torch.float64)
    ours, ours_grads = _grads(lambda q, k, v: blocked_attention(q, k, v, mask, 0.7, p), inputs, weight)
    assert len(calls) == len(blocks) and len({c[0] for c in calls}) == 1  # one seed per call, one mask per block
    assert set((drawn == 0).flatten().tolist()) == {True, False}

    def reference(q, k, v):
        scores = 0.7 * q @ k.transpose(2, 3)
        scores = scores.masked_fill(~mask, -math.inf)
        return (torch.softmax(scores, -1) * drawn) @ v

    ref, ref_grads = _grads(reference, inputs, weight)
    assert torch.allclose(ours, ref, atol=1e-12, rtol=0)
    for a, b in zip(ours_grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_blocks_cover_every_text_and_head_once():
    for shape in [(5, 4, 6, 6), (3, 12, 256, 256), (2, 12, 512, 512), (64, 12, 32, 32), (1, 1, 1, 1)]:
        batch, heads = shape[:2]
        seen = torch.zeros(batch, heads, dtype=torch.long)
        for texts, head_range in _blocks(*shape):
            seen[texts, head_range] += 1
        assert torch.equal(seen, torch.ones_like(seen)), shape
    assert len(_blocks(32, 12, 256, 256)) == 32  # SciFact documents: one text per block
    assert len(_blocks(2, 12, 512, 512)) == 2 * 4  # longer texts: three heads per block


@pytest.mark.parametrize("block_values", [H * 40 * 40, 10_000_000])  # five blocks (run on two threads), one block
def test_same_seed_same_result_on_one_or_two_threads(monkeypatch, block_values):
    monkeypatch.setattr(blocked_module, "BLOCK_VALUES", block_values)
    inputs = _inputs(3, dtype=torch.float32, lq=40, lk=40)
    mask = torch.ones(B, 1, 1, 40, dtype=torch.bool)
    mask[0, ..., 30:] = False
    results = []
    threads = torch.get_num_threads()
    try:
        for n_threads in (1, 2, 2):
            torch.set_num_threads(n_threads)
            torch.manual_seed(11)
            results.append(_grads(lambda q, k, v: blocked_attention(q, k, v, mask, 0.5, 0.1), inputs,
                                  torch.ones(B, H, 40, D)))
    finally:
        torch.set_num_threads(threads)
    (out1, g1), (out2, g2), (out3, g3) = results
    assert torch.allclose(out1, out2, atol=1e-6, rtol=0) and torch.equal(out2, out3)  # the same masks
    assert all(torch.allclose(a, b, atol=1e-6, rtol=0) and torch.equal(b, c) for a, b, c in zip(g1, g2, g3))
    torch.manual_seed(12)
    other = blocked_attention(*inputs, mask, 0.5, 0.1).detach()
    assert not torch.equal(other, out1)


def test_bf16_autocast_is_close_to_float32():
    inputs = _inputs(4, dtype=torch.float32, lq=16, lk=16)
    mask = torch.ones(B, 1, 1, 16, dtype=torch.bool)
    mask[2, ..., 10:] = False
    weight = torch.randn(B, H, 16, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = blocked_attention(*inputs, mask, 0.5, 0.0)
    assert out.dtype == torch.bfloat16
    (out.float() * weight).sum().backward()
    bf16_grads = [t.grad.clone() for t in inputs]
    for t in inputs:
        t.grad = None
    ref, ref_grads = _grads(lambda q, k, v: eager_attention(q, k, v, mask, 0.5, 0.0, blocked=False), inputs, weight)
    assert torch.allclose(out.float(), ref, atol=3e-2, rtol=3e-2)
    for a, b in zip(bf16_grads, ref_grads):
        assert a.dtype == torch.float32
        assert torch.allclose(a, b, atol=5e-2, rtol=5e-2)


def test_eager_attention_blocks_only_large_matrices(monkeypatch):
    calls = []
    real = blocked_module.blocked_attention
    monkeypatch.setattr(blocked_module, "blocked_attention", lambda *a: calls.append(1) or real(*a))
    q, k, v = _inputs(5)
    eager_attention(q, k, v, None, 0.5, 0.1)  # B*H*L*L = 720 scores: whole
    assert calls == []
    monkeypatch.setattr(blocked_module, "MIN_VALUES", B * H * LQ * LQ)
    eager_attention(q, k, v, None, 0.5, 0.1)
    eager_attention(q, k, v, None, 0.5, 0.0)  # no dropout: whole
    eager_attention(q, k, v, None, 0.5, 0.1, fast=False)  # torch's dropout: whole
    eager_attention(q, k, v, None, 0.5, 0.1, blocked=False)
    assert calls == [1]
