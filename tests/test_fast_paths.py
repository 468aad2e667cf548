"""The CPU fast paths compute what the plain paths compute.

- ``dropout_mask`` / ``FastDropout``: Bernoulli(1 - p) keep-masks scaled by 1 / (1 - p),
  reproducible from torch's seed; the gradient is the same mask.
- ``attention_with_fast_dropout``: ``sdpa`` itself without dropout; with dropout, eager
  attention with that mask.
- ``fast_cpu_dropout``: swaps and restores the model's modules; eval outputs unchanged;
  a model saved inside it has a plain config.
- ``one_lookup_per_batch``: the same loss and gradients as one lookup per chunk (float64).
- fused AdamW: the same updates as the default AdamW.
"""

import json
import math

import pytest
import torch
from torch import nn

from sbert_triplet.config import OptimConfig
from sbert_triplet.losses import MultipleNegativesRankingLoss
from sbert_triplet.training.bucketing import BucketPlanner, TokenCache, encode_chunk, encode_plan
from sbert_triplet.training.fast_dropout import (
    ATTENTION_NAME,
    FastDropout,
    attention_with_fast_dropout,
    dropout_mask,
    fast_cpu_dropout,
)
from sbert_triplet.training.optim import build_optimizer
from sbert_triplet.training.token_embeddings import _TableLookup, one_lookup_per_batch

TEXTS = {
    "anchor": ["a red cat", "the big dog runs fast", "man", "a happy child plays with a small old dog today"],
    "positive": ["a cat that is red", "dog", "a young man walks", "child"],
    "negative_1": ["blue", "a sad woman", "the good girl is happy and the bad boy is sad", "old person"],
}


@pytest.mark.parametrize("p", [0.1, 0.5, 1 / 512])  # 1/512: only the tie rule drops anything
def test_dropout_mask_is_bernoulli_and_scaled(p):
    torch.manual_seed(0)
    mask = dropout_mask((1000, 4000), p)
    values = torch.unique(mask).tolist()
    assert values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-7) and len(values) == 2
    kept = (mask > 0).double().mean().item()
    sigma = math.sqrt(p * (1 - p) / mask.numel())
    assert abs(kept - (1 - p)) < 5 * sigma
    # no structure: both halves (two threads) and neighbouring elements are independent
    halves = (mask > 0).double().view(2, -1).mean(dim=1)
    assert torch.all((halves - (1 - p)).abs() < 5 * sigma * math.sqrt(2))
    flat = (mask > 0).double().view(-1)
    both = (flat[1:] * flat[:-1]).mean().item()
    assert abs(both - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / flat.numel())


def test_dropout_mask_follows_torch_seed_and_p_zero_keeps_all():
    torch.manual_seed(3)
    a = dropout_mask((64, 33), 0.1)
    torch.manual_seed(3)
    b = dropout_mask((64, 33), 0.1)
    c = dropout_mask((64, 33), 0.1)
    assert torch.equal(a, b) and not torch.equal(b, c)
    assert torch.equal(dropout_mask((7, 5), 0.0), torch.ones(7, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout_mask((3,), 1.0)


def test_fast_dropout_forward_backward_and_eval():
    layer = FastDropout(0.25)
    x = torch.randn(50, 70, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    y = layer(x)
    torch.manual_seed(1)
    mask = dropout_mask(x.shape, 0.25).double()
    assert torch.allclose(y, x * mask, atol=0, rtol=0)
    y.sum().backward()
    assert torch.equal(x.grad, mask)
    layer.eval()
    assert layer(x) is x
    assert FastDropout(0.0)(x) is x


def _qkv(seed=0, b=2, h=3, lq=5, d=4):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, lq, d, generator=g, dtype=torch.float64) for _ in range(3)]


class _Attn(nn.Module):
    is_causal = False


def test_attention_without_dropout_is_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v = _qkv()
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, ..., 3:] = False
    module = _Attn().train()
    ours, _ = attention_with_fast_dropout(module, q, k, v, mask, dropout=0.0, scaling=0.5)
    ref, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=0.5)
    assert torch.allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("bool_mask", [True, False])
def test_attention_with_dropout_is_eager_attention_with_the_mask(bool_mask):
    q, k, v = _qkv(1)
    keep = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    keep[1, ..., 2:] = False
    mask = keep if bool_mask else torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, -1e30)
    module = _Attn().train()
    torch.manual_seed(5)
    ours, weights = attention_with_fast_dropout(module, q, k, v, mask, dropout=0.3, scaling=None)
    torch.manual_seed(5)
    drop = dropout_mask((2, 3, 5, 5), 0.3).double()
    scores = (q @ k.transpose(2, 3)) / math.sqrt(4)
    probs = torch.softmax(scores.masked_fill(~keep, -math.inf), dim=-1)
    ref = ((probs * drop) @ v).transpose(1, 2)
    assert weights is None
    assert torch.allclose(ours, ref, atol=1e-12)


def test_fast_cpu_dropout_swaps_and_restores(tiny_model, tmp_path):
    hf = tiny_model[0].auto_model
    n_dropout = sum(type(m) is nn.Dropout for m in tiny_model.modules())
    assert n_dropout > 0 and hf.config._attn_implementation == "sdpa"
    features = tiny_model.preprocess(TEXTS["anchor"])
    tiny_model.eval()
    with torch.no_grad():
        before = tiny_model(dict(features))["sentence_embedding"]
    with fast_cpu_dropout(tiny_model) as swapped:
        assert swapped == n_dropout
        assert not any(type(m) is nn.Dropout for m in tiny_model.modules())
        assert hf.config._attn_implementation == ATTENTION_NAME
        with torch.no_grad():
            inside = tiny_model(dict(features))["sentence_embedding"]
        tiny_model.save(str(tmp_path / "saved"))
    assert torch.allclose(before, inside, atol=1e-6)
    assert sum(type(m) is nn.Dropout for m in tiny_model.modules()) == n_dropout
    assert hf.config._attn_implementation == "sdpa"
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert ATTENTION_NAME not in json.dumps(config)
    with pytest.raises(RuntimeError, match="boom"), fast_cpu_dropout(tiny_model):
        raise RuntimeError("boom")
    assert hf.config._attn_implementation == "sdpa" and not any(isinstance(m, FastDropout) for m in tiny_model.modules())
    with fast_cpu_dropout(tiny_model, enabled=False) as swapped:
        assert swapped == 0 and hf.config._attn_implementation == "sdpa"


def test_fast_cpu_dropout_trains_with_dropout_on(tiny_model):
    """In train mode the forward differs from eval (dropout is on) and is reproducible from the seed."""
    features = tiny_model.preprocess(TEXTS["positive"])
    tiny_model.train()
    with fast_cpu_dropout(tiny_model):
        torch.manual_seed(9)
        a = tiny_model(dict(features))["sentence_embedding"]
        torch.manual_seed(9)
        b = tiny_model(dict(features))["sentence_embedding"]
        a.sum().backward()
        tiny_model.eval()
        with torch.no_grad():
            c = tiny_model(dict(features))["sentence_embedding"]
    assert torch.equal(a, b) and not torch.allclose(a, c, atol=1e-4)
    assert all(p.grad is not None for p in tiny_model[0].auto_model.encoder.parameters())


def _plan(model, bucketing=True):
    cache = TokenCache.for_model(model, [t for col in TEXTS.values() for t in col])
    ids = {col: cache.ids(t) for col, t in TEXTS.items()}
    return BucketPlanner(bucketing=bucketing, overhead_tokens=0)(cache, ids)


def _loss_grads(model, plan, shared):
    model.zero_grad(set_to_none=True)
    if shared:
        emb = encode_plan(model, plan)
    else:  # one lookup per chunk: the chunks one by one
        parts = [encode_chunk(model, chunk) for chunk in plan.chunks]
        emb = plan.split(torch.cat(parts))
    loss = MultipleNegativesRankingLoss(scale=20.0)(emb["anchor"], emb["positive"], emb["negative_1"])
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bucketing", [True, False])
def test_one_lookup_per_batch_same_loss_and_gradients(tiny_model, bucketing):
    model = tiny_model.double().eval()  # dropout off: both runs compute the same function
    plan = _plan(model, bucketing)
    assert len(plan.chunks) > 1
    loss_a, grads_a = _loss_grads(model, plan, shared=False)
    loss_b, grads_b = _loss_grads(model, plan, shared=True)
    assert abs(loss_a.item() - loss_b.item()) < 1e-12
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-12), name
    weight = model[0].auto_model.get_input_embeddings()
    assert type(weight) is nn.Embedding  # restored
    pad = weight.padding_idx
    if pad is not None:
        assert torch.all(grads_b[next(n for n in grads_b if "word_embeddings" in n)][pad] == 0)


def test_one_lookup_per_batch_only_with_gradients(tiny_model):
    plan = _plan(tiny_model)
    with torch.no_grad(), one_lookup_per_batch(tiny_model, plan.chunks) as shared:
        assert not shared
    with one_lookup_per_batch(tiny_model, plan.chunks) as shared:
        assert shared and isinstance(tiny_model[0].auto_model.get_input_embeddings(), _TableLookup)
    with one_lookup_per_batch(tiny_model, plan.chunks[:1]) as shared:
        assert not shared
    assert type(tiny_model[0].auto_model.get_input_embeddings()) is nn.Embedding


def test_fused_adamw_same_updates_as_default(tiny_model):
    import copy

    models = [tiny_model, copy.deepcopy(tiny_model)]
    opts = [build_optimizer(m, OptimConfig(fused_adamw=fused, lr=1e-3)) for m, fused in zip(models, (False, True))]
    assert opts[1].defaults.get("fused") and not opts[0].defaults.get("fused")
    features = tiny_model.preprocess(TEXTS["anchor"])
    for _ in range(3):
        for m, opt in zip(models, opts):
            m.eval()
            m(dict(features))["sentence_embedding"].pow(2).sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
