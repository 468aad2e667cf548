"""Gradient cache (Gao et al. 2021) is exact: loss and every gradient equal the uncached computation.

float64 on the tiny BERT, a batch of 16 rows encoded in mini-batches of 1, 2, 4 and 8.
Dropout off: equal to one forward of all 16 rows. Dropout on: equal to the same chunks
forwarded with grad in one graph from the same seed (dropout masks depend on the chunk
shape), and only because each chunk's RNG state is replayed.
"""

import pytest
import torch

from sbert_triplet.losses import MultipleNegativesRankingLoss, TripletLoss
from sbert_triplet.training.grad_cache import chunk_features, grad_cache_backward

WORDS = "red blue green big small old young happy sad fast slow good bad new".split()
NOUNS = "cat dog man woman child boy girl person".split()
B = 16
TOL = 1e-5


def _texts(seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    pick = lambda seq: seq[int(torch.randint(len(seq), (1,), generator=g))]  # noqa: E731
    # different lengths, so padding and attention masks matter
    return [" ".join([pick(WORDS), pick(NOUNS)] + [pick(WORDS)] * int(torch.randint(0, 4, (1,), generator=g)))
            for _ in range(B)]


@pytest.fixture
def setup(tiny_model):
    model = tiny_model.double()
    batch = {col: model.preprocess(_texts(seed)) for seed, col in enumerate(["anchor", "positive", "negative_1"])}
    return model, batch


LOSSES = {
    "mnr": lambda: (lambda e: MultipleNegativesRankingLoss(scale=20.0)(e["anchor"], e["positive"], e["negative_1"])),
    "triplet": lambda: (lambda e: TripletLoss("euclidean", margin=0.5)(e["anchor"], e["positive"], e["negative_1"])),
}


def _grads(model) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()}


def _big_batch(model, batch, loss_fn):
    model.zero_grad(set_to_none=True)
    embeddings = {col: model(dict(f))["sentence_embedding"] for col, f in batch.items()}  # {col: (B, D)}
    loss = loss_fn(embeddings)
    loss.backward()
    return loss.detach(), _grads(model)


def _same_chunks_one_graph(model, batch, loss_fn, size):
    model.zero_grad(set_to_none=True)
    embeddings = {
        col: torch.cat([model(c)["sentence_embedding"] for c in chunk_features(f, size)])  # (B, D)
        for col, f in batch.items()
    }
    loss = loss_fn(embeddings)
    loss.backward()
    return loss.detach(), _grads(model)


def _cached(model, batch, loss_fn, size, replay_rng=True):
    model.zero_grad(set_to_none=True)
    loss = grad_cache_backward(model, batch, size, loss_fn, replay_rng=replay_rng)
    return loss, _grads(model)


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for name in a:
        assert (a[name] is None) == (b[name] is None), name
        if a[name] is not None:
            worst = max(worst, (a[name] - b[name]).abs().max().item())
    return worst


def _has_gradients(grads) -> bool:
    return sum(g.abs().sum().item() for g in grads.values() if g is not None) > 0


@pytest.mark.parametrize("loss_name", ["mnr", "triplet"])
@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_dropout_off_equals_the_big_batch(setup, loss_name, size):
    model, batch = setup
    model.eval()  # dropout off, gradients on
    loss_fn = LOSSES[loss_name]()
    ref_loss, ref_grads = _big_batch(model, batch, loss_fn)
    loss, grads = _cached(model, batch, loss_fn, size)
    assert loss.dtype == torch.float64 and not loss.requires_grad
    assert abs(loss.item() - ref_loss.item()) < TOL
    assert _has_gradients(ref_grads)
    assert _max_diff(grads, ref_grads) < TOL


@pytest.mark.parametrize("loss_name", ["mnr", "triplet"])
@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_dropout_on_equals_the_same_chunks_in_one_graph(setup, loss_name, size):
    model, batch = setup
    model.train()
    loss_fn = LOSSES[loss_name]()
    torch.manual_seed(123)
    ref_loss, ref_grads = _same_chunks_one_graph(model, batch, loss_fn, size)
    after_reference = torch.rand(1)
    torch.manual_seed(123)
    loss, grads = _cached(model, batch, loss_fn, size)
    assert abs(loss.item() - ref_loss.item()) < TOL
    assert _has_gradients(ref_grads)
    assert _max_diff(grads, ref_grads) < TOL
    assert torch.equal(torch.rand(1), after_reference)  # the replay leaves the RNG where one pass would


@pytest.mark.parametrize("loss_name", ["mnr", "triplet"])
def test_without_rng_replay_dropout_gradients_differ(setup, loss_name):
    model, batch = setup
    model.train()
    loss_fn = LOSSES[loss_name]()
    torch.manual_seed(123)
    ref_loss, ref_grads = _same_chunks_one_graph(model, batch, loss_fn, 4)
    torch.manual_seed(123)
    loss, grads = _cached(model, batch, loss_fn, 4, replay_rng=False)
    assert abs(loss.item() - ref_loss.item()) < TOL  # the loss comes from the first pass either way
    assert _max_diff(grads, ref_grads) > TOL


def test_a_column_the_loss_ignores_gets_no_gradient(setup):
    model, batch = setup
    model.eval()
    loss_fn = lambda e: MultipleNegativesRankingLoss()(e["anchor"], e["positive"])  # noqa: E731
    ref_loss, ref_grads = _big_batch(model, batch, loss_fn)
    loss, grads = _cached(model, batch, loss_fn, 4)
    assert abs(loss.item() - ref_loss.item()) < TOL and _max_diff(grads, ref_grads) < TOL


def test_mini_batch_size_must_be_positive(setup):
    model, batch = setup
    with pytest.raises(ValueError, match="mini_batch_size"):
        grad_cache_backward(model, batch, 0, LOSSES["mnr"]())


@pytest.mark.gpu  # run on a CUDA machine with: pytest -m gpu tests/test_grad_cache.py
@pytest.mark.parametrize("loss_name", ["mnr", "triplet"])
def test_dropout_on_cuda_equals_the_same_chunks_in_one_graph(setup, loss_name):
    model, batch = setup
    device = torch.device("cuda")
    model.to(device).train()
    batch = {col: {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in f.items()} for col, f in batch.items()}
    loss_fn = LOSSES[loss_name]()
    torch.manual_seed(123)
    ref_loss, ref_grads = _same_chunks_one_graph(model, batch, loss_fn, 4)
    torch.manual_seed(123)
    model.zero_grad(set_to_none=True)
    loss = grad_cache_backward(model, batch, 4, loss_fn, device=device)
    assert abs(loss.item() - ref_loss.item()) < TOL and _max_diff(_grads(model), ref_grads) < TOL
