"""On all-MiniLM-L6-v2 and 32 SNLI triplets: length buckets cut the padding, not the loss."""

import pytest
import torch

from sbert_triplet.data import load_training_data
from sbert_triplet.losses import MultipleNegativesRankingLoss
from sbert_triplet.training.batching import embed_batch
from sbert_triplet.training.bucketing import BucketPlanner, TokenCache


@pytest.mark.real
def test_buckets_on_snli_keep_the_loss_and_drop_most_padding(minilm_path, shared_data):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path, device="cpu")
    model.max_seq_length = 64
    rows, _ = load_training_data(str(shared_data / "snli" / "snli_triplets_test.jsonl.gz"))
    rows = rows.shuffle(seed=0).select(range(32))
    columns = ["anchor", "positive", "negative_1"]
    cache = TokenCache.for_model(model, [t for c in columns for t in rows[c]])
    ids = {c: cache.ids(list(rows[c])) for c in columns}
    plain, bucketed = BucketPlanner(bucketing=False)(cache, ids), BucketPlanner()(cache, ids)
    assert plain.padded_tokens / plain.real_tokens > 1.8  # most of the unbucketed batch is padding
    assert bucketed.padded_tokens / bucketed.real_tokens < 1.15
    loss_fn = MultipleNegativesRankingLoss(scale=20.0)
    model.eval()  # dropout off
    losses, grads = [], []
    for plan in (plain, bucketed):
        model.zero_grad(set_to_none=True)
        emb = embed_batch(model, plan, torch.device("cpu"))
        loss = loss_fn(emb["anchor"], emb["positive"], emb["negative_1"])
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert abs(losses[0] - losses[1]) < 1e-5
    assert (grads[0] - grads[1]).abs().max().item() < 1e-5 * max(1.0, grads[0].abs().max().item())


@pytest.mark.real
def test_packed_forward_on_scifact_keeps_loss_and_gradients(minilm_path, shared_data):
    """MiniLM, 16 SciFact (query, abstract) pairs at 256 tokens: the padding-free forward and
    the fast dropout masks give the per-chunk loss and gradients (dropout off), and train."""
    from sentence_transformers import SentenceTransformer

    from sbert_triplet.training.fast_dropout import fast_cpu_dropout
    from sbert_triplet.training.packed import supports_packed

    model = SentenceTransformer(minilm_path, device="cpu")
    model.max_seq_length = 256
    assert supports_packed(model)
    rows, _ = load_training_data(str(shared_data / "scifact"), split="train")
    rows = rows.shuffle(seed=0).select(range(16))
    columns = ["anchor", "positive"]
    cache = TokenCache.for_model(model, [t for c in columns for t in rows[c]])
    ids = {c: cache.ids(list(rows[c])) for c in columns}
    loss_fn = MultipleNegativesRankingLoss(scale=20.0)
    model.eval()  # dropout off
    losses, grads = [], []
    for packed in (False, True):
        plan = BucketPlanner(packed=packed)(cache, ids)
        assert len(plan.chunks) > 1
        model.zero_grad(set_to_none=True)
        emb = embed_batch(model, plan, torch.device("cpu"))
        loss = loss_fn(emb["anchor"], emb["positive"])
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert abs(losses[0] - losses[1]) < 1e-5
    assert (grads[0] - grads[1]).abs().max().item() < 1e-5 * max(1.0, grads[0].abs().max().item())
    model.train()  # dropout on, fast masks: a finite loss that differs from the dropout-free one
    with fast_cpu_dropout(model):
        torch.manual_seed(0)
        emb = embed_batch(model, BucketPlanner(packed=True)(cache, ids), torch.device("cpu"))
        loss = loss_fn(emb["anchor"], emb["positive"])
    assert torch.isfinite(loss) and abs(loss.item() - losses[0]) > 1e-6


@pytest.mark.real
def test_blocked_attention_on_scifact_matches_the_eval_forward(minilm_path, shared_data, monkeypatch):
    """MiniLM, 16 SciFact pairs at 256 tokens, training mode with the fast paths: with every
    dropout mask set to keep-all, the packed forward through blocked attention gives the loss
    and gradients of the dropout-free per-chunk forward."""
    from sentence_transformers import SentenceTransformer

    import sbert_triplet.training.blocked_attention as blocked_module
    import sbert_triplet.training.fast_dropout as fast_module
    from sbert_triplet.training.fast_dropout import fast_cpu_dropout

    model = SentenceTransformer(minilm_path, device="cpu")
    model.max_seq_length = 256
    rows, _ = load_training_data(str(shared_data / "scifact"), split="train")
    rows = rows.shuffle(seed=0).select(range(16))
    cache = TokenCache.for_model(model, [t for c in ("anchor", "positive") for t in rows[c]])
    ids = {c: cache.ids(list(rows[c])) for c in ("anchor", "positive")}
    loss_fn = MultipleNegativesRankingLoss(scale=20.0)
    keep_all = lambda shape, p, seed=None, parallel=True: torch.ones(shape)  # noqa: E731
    monkeypatch.setattr(fast_module, "dropout_mask", keep_all)
    monkeypatch.setattr(blocked_module, "dropout_mask", keep_all)
    calls = []
    real_blocked = blocked_module.blocked_attention
    monkeypatch.setattr(blocked_module, "blocked_attention", lambda *a: calls.append(a[0].shape) or real_blocked(*a))
    losses, grads = [], []
    for train in (False, True):
        model.train(train)
        model.zero_grad(set_to_none=True)
        with fast_cpu_dropout(model, enabled=train):
            emb = embed_batch(model, BucketPlanner(packed=train)(cache, ids), torch.device("cpu"))
        loss = loss_fn(emb["anchor"], emb["positive"])
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert len(calls) == 6 and all(shape[2] == 256 for shape in calls)  # the abstracts' chunk, every layer
    assert abs(losses[0] - losses[1]) < 1e-5
    assert (grads[0] - grads[1]).abs().max().item() < 1e-5 * max(1.0, grads[0].abs().max().item())
