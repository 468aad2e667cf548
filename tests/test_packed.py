"""The padding-free (packed) BERT forward computes what the per-chunk forward computes.

float64 on the tiny BERT, dropout off: sentence embeddings, the loss and every parameter
gradient of a plan encoded packed equal those of the chunks encoded one by one (mean and
CLS pooling, with and without Normalize, bucketed or one chunk per column, right and left
padding). Training with the packed forward gives the same losses as without. With dropout
on it is reproducible from the seed. Models it cannot run keep the per-chunk path.
"""

import copy
import json

import pytest
import torch

from sbert_triplet.losses import MultipleNegativesRankingLoss, TripletLoss
from sbert_triplet.training.bucketing import BucketPlanner, TokenCache, encode_plan
from sbert_triplet.training.packed import PackedLayout, encode_packed, supports_packed

TEXTS = {
    "anchor": ["a red cat", "the big dog runs fast", "man", "a happy child plays with a small old dog today", "x"],
    "positive": ["a cat that is red", "dog", "a young man walks", "child", "the sad old woman reads a book"],
    "negative_1": ["blue", "a sad woman", "the good girl is happy and the bad boy is sad", "old person", "cat dog"],
}
LOSSES = {
    "mnr": lambda e: MultipleNegativesRankingLoss(scale=20.0)(e["anchor"], e["positive"], e["negative_1"]),
    "triplet": lambda e: TripletLoss("euclidean", margin=0.5)(e["anchor"], e["positive"], e["negative_1"]),
}


def _plan(model, bucketing=True, packed=False):
    cache = TokenCache.for_model(model, [t for col in TEXTS.values() for t in col])
    ids = {col: cache.ids(t) for col, t in TEXTS.items()}
    return BucketPlanner(bucketing=bucketing, overhead_tokens=0, packed=packed)(cache, ids)


def _loss_grads(model, plan, loss):
    model.zero_grad(set_to_none=True)
    emb = encode_plan(model, plan)
    value = LOSSES[loss](emb)
    value.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return emb, value.detach(), grads


def _check_equal(model, bucketing, loss):
    model = model.double().eval()  # eval: dropout off (gradients are still recorded)
    emb_a, loss_a, grads_a = _loss_grads(model, _plan(model, bucketing, packed=False), loss)
    plan = _plan(model, bucketing, packed=True)
    assert plan.packed and len(plan.chunks) > 1
    emb_b, loss_b, grads_b = _loss_grads(model, plan, loss)
    for col in TEXTS:
        assert torch.allclose(emb_a[col], emb_b[col], atol=1e-10), col
    assert abs(loss_a.item() - loss_b.item()) < 1e-10
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-10), name


@pytest.mark.parametrize("bucketing", [True, False])
@pytest.mark.parametrize("loss", ["mnr", "triplet"])
def test_packed_equals_per_chunk(tiny_model, bucketing, loss):
    _check_equal(tiny_model, bucketing, loss)


@pytest.mark.parametrize("pooling, normalize", [("cls", False), ("max", True), ("mean", False)])
def test_packed_equals_per_chunk_other_poolings(tmp_path, pooling, normalize):
    from sentence_transformers import SentenceTransformer

    from conftest import build_tiny_model_dir

    model = SentenceTransformer(str(build_tiny_model_dir(tmp_path / "m", pooling, normalize)), device="cpu")
    _check_equal(model, True, "mnr")


def test_packed_with_left_padding(tiny_model):
    tiny_model.tokenizer.padding_side = "left"
    _check_equal(tiny_model, True, "mnr")


def test_layout_puts_each_real_token_once():
    chunks = [{"input_ids": torch.tensor([[5, 6, 0], [7, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]])},
              {"input_ids": torch.tensor([[8, 9]]), "attention_mask": torch.tensor([[1, 1]])}]
    layout = PackedLayout(chunks, torch.device("cpu"))
    assert layout.num_tokens == 5
    assert layout.input_ids.tolist() == [5, 6, 7, 8, 9]
    assert layout.position_ids.tolist() == [0, 1, 0, 0, 1]
    assert layout.token_type_ids.tolist() == [0] * 5
    assert layout.sizes == [3, 2]  # each chunk's packed rows, in order; gather indexes within them
    assert layout.gather[0].tolist() == [0, 1, 0, 2, 0, 0] and layout.gather[1].tolist() == [0, 1]
    assert layout.real[0].tolist() == [0, 1, 3]


def test_packed_dropout_on_is_reproducible_and_trains(tiny_model):
    tiny_model.train()
    plan = _plan(tiny_model, packed=True)
    torch.manual_seed(4)
    a = encode_packed(tiny_model, plan.chunks)
    torch.manual_seed(4)
    b = encode_packed(tiny_model, plan.chunks)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    tiny_model.eval()
    c = encode_packed(tiny_model, plan.chunks)
    assert not all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, c))
    torch.cat(a).sum().backward()
    assert all(p.grad is not None for p in tiny_model[0].auto_model.encoder.parameters())


def test_unsupported_models_keep_the_chunk_path(tiny_model):
    assert supports_packed(tiny_model)
    assert not supports_packed(torch.nn.Linear(2, 2))
    assert not supports_packed(torch.nn.parallel.DataParallel(tiny_model))
    handle = tiny_model.register_forward_hook(lambda *args: None)  # a hook on a skipped module must run
    assert not supports_packed(tiny_model)
    handle.remove()
    handle = tiny_model[0].auto_model.encoder.layer[0].attention.register_forward_pre_hook(lambda *args: None)
    assert not supports_packed(tiny_model)
    handle.remove()
    assert supports_packed(tiny_model)
    with pytest.raises(ValueError, match="BertModel"):
        encode_packed(torch.nn.Linear(2, 2), [])
    with torch.no_grad():  # inference never takes the packed path
        plan = _plan(tiny_model, packed=True)
        emb = encode_plan(tiny_model.eval(), plan)
    assert emb["anchor"].shape[0] == len(TEXTS["anchor"])


def _zero_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


@pytest.mark.parametrize("loss", ["mnr", "triplet"])
def test_training_packed_gives_the_same_losses_and_weights(tmp_path, tiny_model, loss):
    from sbert_triplet.config import build_train_config
    from sbert_triplet.training.loop import train

    rows = [{"anchor": a + extra, "positive": p, "negative": n}
            for extra in ("", " again") for a, p, n in zip(*TEXTS.values())]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _zero_dropout(tiny_model)
    logs, weights = {}, {}
    for packed in (True, False):
        out = tmp_path / f"p{packed}"
        cfg = build_train_config({"train": str(path), "output_dir": str(out), "batch_size": 5, "log_steps": 1,
                                  "lr": 1e-3, "eval_before": False, "loss": loss, "max_steps": 2,
                                  "packed_forward": packed})
        model = copy.deepcopy(tiny_model)
        train(cfg, model=model, evaluators=[])
        logs[packed] = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
        weights[packed] = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = {k: [r["loss"] for r in v if r["event"] == "train"] for k, v in logs.items()}
    assert len(losses[True]) == 2 and losses[True] == pytest.approx(losses[False], abs=1e-5)
    for name in weights[True]:
        assert torch.allclose(weights[True][name], weights[False][name], atol=1e-5), name


def test_dummy_rows_change_nothing(tiny_model):
    """bf16 rounds the packed rows up with dummy tokens: embeddings and gradients stay the same."""
    model = tiny_model.double().eval()
    plan = _plan(model, packed=True)
    results = []
    for multiple in (1, 64):
        layout = PackedLayout(plan.chunks, torch.device("cpu"), multiple)
        assert layout.input_ids.shape[0] % multiple == 0 and layout.num_tokens == sum(
            int(c["attention_mask"].sum()) for c in plan.chunks)
        model.zero_grad(set_to_none=True)
        emb = torch.cat(encode_packed(model, plan.chunks, rows_multiple_of=multiple))
        emb.pow(2).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append((emb.detach(), grads))
    assert PackedLayout(plan.chunks, torch.device("cpu"), 64).extra > 0
    assert torch.allclose(results[0][0], results[1][0], atol=1e-12)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-12)


def test_packed_forward_runs_under_the_accelerator_autocast(tiny_model):
    """bf16: the packed forward calls the layers directly (not the autocast-wrapped
    model.forward), so the training step must open the accelerator's autocast itself."""
    from accelerate import Accelerator

    from sbert_triplet.training.objective import Objective
    from sbert_triplet.training.step import backward_batch

    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state:  # another test's accelerator (other precision) in this process
        AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    model = accelerator.prepare(tiny_model)
    dtypes = []
    layer = model[0].auto_model.encoder.layer[0].intermediate.dense
    handle = layer.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    plan = _plan(model, packed=True)
    batch = {"texts": TEXTS, "features": plan}
    objective = Objective(name="mnr", kind="mnr", loss_fn=MultipleNegativesRankingLoss(scale=20.0))
    loss = backward_batch(model, objective, batch, accelerator, mini_batch_size=None)
    handle.remove()
    assert dtypes == [torch.bfloat16] and loss.dtype == torch.float32 and torch.isfinite(loss)
