"""Length-bucketed encoding computes what the unbucketed batch computes, with less padding.

float64 on the tiny BERT, dropout off: the loss and every parameter gradient of a batch
encoded in length-sorted chunks (all columns mixed) equal those of one padded forward per
column. The gradient cache over a bucketed plan equals the big batch too, and with dropout
on it equals the same chunks forwarded in one graph (RNG replayed per chunk). The chunk
cuts minimise padded tokens plus a per-chunk cost (checked against brute force).
"""

import itertools

import numpy as np
import pytest
import torch

from sbert_triplet.losses import MultipleNegativesRankingLoss, TripletLoss
from sbert_triplet.training.batching import embed_batch
from sbert_triplet.training.bucketing import BucketPlanner, EncodePlan, TokenCache, encode_plan, plan_buckets
from sbert_triplet.training.grad_cache import grad_cache_backward

WORDS = "red blue green big small old young happy sad fast slow good bad new".split()
NOUNS = "cat dog man woman child boy girl person".split()
COLUMNS = ["anchor", "positive", "negative_1"]
B = 12
TOL = 1e-10  # float64

LOSSES = {
    "mnr": lambda e: MultipleNegativesRankingLoss(scale=20.0)(e["anchor"], e["positive"], e["negative_1"]),
    "triplet": lambda e: TripletLoss("euclidean", margin=0.5)(e["anchor"], e["positive"], e["negative_1"]),
}


def _texts(seed: int, longest: int = 10) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    extra = torch.randint(0, longest, (B,), generator=g).tolist()  # very different lengths: padding matters
    return [" ".join([WORDS[(i + seed) % len(WORDS)], NOUNS[i % len(NOUNS)]] + ["big"] * k)
            for i, k in enumerate(extra)]


@pytest.fixture
def batch(tiny_model):
    model = tiny_model.double()
    texts = {col: _texts(seed) for seed, col in enumerate(COLUMNS)}
    cache = TokenCache.for_model(model, [t for col in COLUMNS for t in texts[col]])
    ids = {col: cache.ids(texts[col]) for col in COLUMNS}
    per_column = {col: model.preprocess(texts[col]) for col in COLUMNS}  # the unbucketed batch
    return model, cache, ids, per_column


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _loss_and_grads(model, features, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(embed_batch(model, features, torch.device("cpu")))
    loss.backward()
    return loss.detach(), _grads(model)


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys() and a
    return max((a[n] - b[n]).abs().max().item() for n in a)


@pytest.mark.parametrize("loss_name", ["mnr", "triplet"])
@pytest.mark.parametrize("overhead", [0, 8, 10_000])
@pytest.mark.parametrize("width_multiple,rows_multiple", [(1, 1), (4, 3)])
def test_bucketed_loss_and_gradients_equal_the_unbucketed_batch(batch, loss_name, overhead, width_multiple,
                                                                 rows_multiple):
    model, cache, ids, per_column = batch
    model.eval()  # dropout off, gradients on
    plan = BucketPlanner(overhead_tokens=overhead, pad_to_multiple_of=width_multiple,
                         rows_multiple_of=rows_multiple)(cache, ids)
    if overhead == 0:
        assert len(plan.chunks) > 3  # really cut into several length groups, columns mixed
    widths = [c["attention_mask"].shape[1] for c in plan.chunks]
    assert all(w % width_multiple == 0 for w in widths)
    if width_multiple > 1:  # some chunk really carries extra padding columns
        assert any(w > int(c["attention_mask"].sum(1).max()) for w, c in zip(widths, plan.chunks))
    ref_loss, ref_grads = _loss_and_grads(model, per_column, LOSSES[loss_name])
    loss, grads = _loss_and_grads(model, plan, LOSSES[loss_name])
    assert loss.dtype == torch.float64
    assert abs(loss.item() - ref_loss.item()) < TOL
    assert _max_diff(grads, ref_grads) < TOL
    assert sum(g.abs().sum().item() for g in ref_grads.values()) > 0


def test_bucketed_embeddings_come_back_in_row_order(batch):
    model, cache, ids, per_column = batch
    model.eval()
    with torch.no_grad():
        ref = {col: model(dict(f))["sentence_embedding"] for col, f in per_column.items()}  # {col: (B, D)}
        got = encode_plan(model, BucketPlanner(overhead_tokens=0)(cache, ids))
    assert list(got) == COLUMNS
    for col in COLUMNS:
        assert got[col].shape == ref[col].shape and (got[col] - ref[col]).abs().max().item() < TOL


def test_buckets_compute_fewer_padded_tokens(batch):
    model, cache, ids, per_column = batch
    bucketed = BucketPlanner(overhead_tokens=4)(cache, ids)
    unbucketed = BucketPlanner(bucketing=False)(cache, ids)
    real = sum(int(f["attention_mask"].sum()) for f in per_column.values())
    assert bucketed.real_tokens == unbucketed.real_tokens == real
    assert unbucketed.padded_tokens == sum(f["attention_mask"].numel() for f in per_column.values())
    assert real <= bucketed.padded_tokens < unbucketed.padded_tokens


@pytest.mark.parametrize("loss_name", ["mnr", "triplet"])
@pytest.mark.parametrize("mini", [2, 5])
def test_grad_cache_over_buckets_equals_the_big_batch(batch, loss_name, mini):
    model, cache, ids, per_column = batch
    model.eval()
    plan = BucketPlanner(overhead_tokens=0, chunk_rows=mini)(cache, ids)
    longest = int(cache.lengths[torch.cat(list(ids.values()))].max())
    assert all(c["attention_mask"].numel() <= mini * longest for c in plan.chunks)  # the memory budget
    ref_loss, ref_grads = _loss_and_grads(model, per_column, LOSSES[loss_name])
    model.zero_grad(set_to_none=True)
    loss = grad_cache_backward(model, plan, mini, LOSSES[loss_name])
    assert abs(loss.item() - ref_loss.item()) < TOL
    assert _max_diff(_grads(model), ref_grads) < TOL


@pytest.mark.parametrize("loss_name", ["mnr", "triplet"])
def test_grad_cache_over_buckets_with_dropout_equals_the_same_chunks_in_one_graph(batch, loss_name):
    model, cache, ids, _ = batch
    model.train()
    plan = BucketPlanner(overhead_tokens=0, chunk_rows=3)(cache, ids)
    torch.manual_seed(7)
    ref_loss, ref_grads = _loss_and_grads(model, plan, LOSSES[loss_name])
    torch.manual_seed(7)
    model.zero_grad(set_to_none=True)
    loss = grad_cache_backward(model, plan, 3, LOSSES[loss_name])
    assert abs(loss.item() - ref_loss.item()) < TOL
    assert _max_diff(_grads(model), ref_grads) < TOL


def _brute_force(lengths, overhead, max_tokens):
    ordered = sorted(lengths)
    best = float("inf")
    for cuts in itertools.product([0, 1], repeat=len(ordered) - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [len(ordered)]
        groups = [ordered[a:b] for a, b in zip(bounds, bounds[1:])]
        if max_tokens and any(len(g) * g[-1] > max_tokens and len(g) > 1 for g in groups):
            continue
        best = min(best, sum(len(g) * g[-1] + overhead for g in groups))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("overhead,max_tokens", [(0, None), (5, None), (50, None), (3, 40)])
def test_plan_buckets_is_optimal_and_covers_every_text_once(seed, overhead, max_tokens):
    lengths = np.random.default_rng(seed).integers(1, 30, size=9).tolist()
    groups = plan_buckets(lengths, overhead, max_tokens)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    group_lengths = [[lengths[i] for i in g] for g in groups]
    assert all(max(a) <= min(b) for a, b in zip(group_lengths, group_lengths[1:]))  # shortest texts first
    if max_tokens:
        assert all(len(g) * max(g) <= max_tokens or len(g) == 1 for g in group_lengths)
    cost = sum(len(g) * max(g) + overhead for g in group_lengths)
    assert cost == _brute_force(lengths, overhead, max_tokens)


def test_plan_buckets_extremes():
    assert len(plan_buckets([3, 9, 3, 9, 5], overhead_tokens=10**6)) == 1  # calls are expensive: one chunk
    groups = plan_buckets([3, 9, 3, 9, 5], overhead_tokens=0)  # calls are free: no padding at all
    assert [sorted(g.tolist()) for g in groups] == [[0, 2], [4], [1, 3]]
    assert plan_buckets([], 5) == []


def test_plan_from_columns_keeps_the_column_chunks():
    features = {col: {"input_ids": torch.arange(10).view(5, 2) + 10 * c, "attention_mask": torch.ones(5, 2),
                      "modality": "text"} for c, col in enumerate(["anchor", "positive"])}
    plan = EncodePlan.from_columns(features, 2)
    assert [len(p) for p in plan.positions] == [2, 2, 1, 2, 2, 1]
    assert all(c["modality"] == "text" for c in plan.chunks)
    flat = torch.cat([c["input_ids"][:, :1].double() for c in plan.chunks])  # (10, 1): a stand-in embedding
    out = plan.split(flat)
    assert torch.equal(out["positive"][:, 0], features["positive"]["input_ids"][:, 0].double())
    assert plan.to("cpu").padded_tokens == 20 and plan.real_tokens == 20


def _brute_force_rounded(lengths, overhead, width_multiple, rows_multiple):
    ordered = sorted(lengths)
    best = float("inf")
    for cuts in itertools.product([0, 1], repeat=len(ordered) - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [len(ordered)]
        if any((b - a) % rows_multiple for a, b in zip(bounds[1:], bounds[2:])):
            continue  # only the first (shortest) group may hold any number of rows
        groups = [ordered[a:b] for a, b in zip(bounds, bounds[1:])]
        best = min(best, sum(len(g) * -(-g[-1] // width_multiple) * width_multiple + overhead for g in groups))
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("width_multiple,rows_multiple", [(8, 1), (4, 2), (1, 3), (16, 4)])
def test_plan_buckets_with_rounding_is_optimal(seed, width_multiple, rows_multiple):
    lengths = np.random.default_rng(seed).integers(1, 40, size=10).tolist()
    groups = plan_buckets(lengths, 6, pad_to_multiple_of=width_multiple, rows_multiple_of=rows_multiple)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    assert all(len(g) % rows_multiple == 0 for g in groups[1:])
    cost = sum(len(g) * -(-max(lengths[i] for i in g) // width_multiple) * width_multiple + 6 for g in groups)
    assert cost == _brute_force_rounded(lengths, 6, width_multiple, rows_multiple)


def test_plan_buckets_rows_rounding_yields_to_a_tight_budget():
    groups = plan_buckets([30] * 7, 0, max_tokens=60, rows_multiple_of=8)  # 2 rows fit: no group of 8 possible
    assert sorted(len(g) for g in groups) == [1, 2, 2, 2]
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        plan_buckets([3, 4], 0, pad_to_multiple_of=0)


def _word_cache(lengths, max_length):
    def tokenize(texts):  # a text of k words is k tokens
        counts = [len(t.split()) for t in texts]
        mask = (torch.arange(max(counts)) < torch.tensor(counts).unsqueeze(1)).long()  # (n, L)
        return {"input_ids": mask * 7, "attention_mask": mask}

    texts = [" ".join([f"w{i}"] * k) for i, k in enumerate(lengths)]
    return TokenCache.build(tokenize, texts, max_length=max_length), texts


@pytest.mark.parametrize("width_multiple,rows_multiple", [(8, 8), (16, 8), (8, 1)])
def test_rounded_chunk_shapes_repeat_across_batches(width_multiple, rows_multiple):
    rng = np.random.default_rng(0)
    max_length = 60  # not a multiple of 16: rounding stops at the encoder's limit
    cache, texts = _word_cache(rng.integers(3, max_length + 1, size=3000).tolist(), max_length)
    shapes = {"exact": set(), "rounded": set()}
    planners = {"exact": BucketPlanner(pad_to_multiple_of=1, rows_multiple_of=1),
                "rounded": BucketPlanner(pad_to_multiple_of=width_multiple, rows_multiple_of=rows_multiple)}
    padded = dict.fromkeys(planners, 0)
    for _ in range(200):
        rows = torch.from_numpy(rng.choice(len(texts), 96, replace=False))  # 32 triplets
        ids = {c: rows[k * 32:(k + 1) * 32] for k, c in enumerate(COLUMNS)}
        for name, planner in planners.items():
            plan = planner(cache, ids)
            padded[name] += plan.padded_tokens
            for chunk in plan.chunks:
                n, width = chunk["attention_mask"].shape
                real = int(chunk["attention_mask"].sum(1).max())
                shapes[name].add((n, width))
                if name == "rounded":
                    assert width == min(-(-real // width_multiple) * width_multiple, max_length) >= real
                    assert n % rows_multiple == 0  # 96 rows: the first chunk's share is a multiple too
    widths = len(range(width_multiple, max_length, width_multiple)) + 1  # multiples below the cap, and the cap
    assert len(shapes["rounded"]) <= widths * (96 // rows_multiple)
    assert 3 * len(shapes["rounded"]) < len(shapes["exact"])
    assert padded["rounded"] < 1.6 * padded["exact"]  # most of the padding savings are kept
