"""Non-finite losses and gradients: the step is skipped, reported and counted; too many in a row stop the run.

NaN is injected with a forward hook on the tiny model: any row whose tokens include "baz"
gets a NaN sentence embedding (so that batch's loss is NaN).
"""

import copy
import json
import math

import pytest
import torch

from sbert_triplet.config import build_train_config
from sbert_triplet.errors import NonFiniteLossError
from sbert_triplet.training import checkpoint, loop

ADJ = "red blue green big small old young happy sad fast slow good bad new".split()
NOUN = "cat dog man woman child boy girl person".split()
ROWS = [{"anchor": f"a {ADJ[i % 14]} {NOUN[i % 8]} sits", "positive": f"the {ADJ[i % 14]} {NOUN[i % 8]} is sitting",
         "negative": f"{ADJ[(i + 5) % 14]} {NOUN[(i + 3) % 8]} runs fast"} for i in range(16)]


def _write(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(data, out, **extra):
    return build_train_config({"train": str(data), "output_dir": str(out), "loss": "mnr", "batch_size": 4,
                               "epochs": 1, "seed": 42, "lr": 1e-3, "log_steps": 1, "eval_before": False, **extra})


def _nan_hook(model, when):
    """Make the embedding of rows that ``when(input_ids_row)`` picks NaN."""

    def hook(module, args, output):
        ids = args[0]["input_ids"]  # (B, L)
        bad = torch.tensor([when(row) for row in ids.tolist()])  # (B,)
        emb = output["sentence_embedding"]  # (B, D)
        output["sentence_embedding"] = torch.where(bad[:, None], torch.full_like(emb, float("nan")), emb)
        return output

    return model.register_forward_hook(hook)


def _events(out, kind):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()
            if json.loads(line)["event"] == kind]


def test_nan_row_is_skipped_and_reported_and_training_goes_on(tmp_path, _tiny_model_session):
    rows = [dict(r) for r in ROWS]
    rows[5]["anchor"] = "a baz cat sits"
    model = copy.deepcopy(_tiny_model_session)
    baz = model.tokenizer.convert_tokens_to_ids("baz")
    _nan_hook(model, lambda ids: baz in ids)
    out = tmp_path / "out"
    with pytest.warns(RuntimeWarning, match="non-finite loss or gradient, step skipped"):
        metrics = loop.train(_config(_write(tmp_path, rows), out), model=model, evaluators=[])
    assert metrics["train"]["steps"] == 4 and metrics["train"]["nonfinite_steps"] == 1
    (event,) = _events(out, "nonfinite")
    assert "a baz cat sits" in event["first_rows"] and event["in_a_row"] == 1
    losses = [r["loss"] for r in _events(out, "train")]
    assert sum(math.isnan(x) for x in losses) == 1 and sum(math.isfinite(x) for x in losses) == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())  # never trained on NaN
    assert model.state_dict().keys() and any(
        not torch.equal(p, q) for p, q in zip(model.parameters(), _tiny_model_session.parameters()))  # it trained


def test_nonfinite_gradient_with_finite_loss_is_skipped(tmp_path, _tiny_model_session, monkeypatch):
    model = copy.deepcopy(_tiny_model_session)
    batches = {"n": 0}
    original = loop.backward_batch

    def counting(*args, **kwargs):
        batches["n"] += 1
        return original(*args, **kwargs)

    def poison(module, args, output):  # step 2's embeddings get a NaN gradient, the loss stays finite
        if batches["n"] == 2 and torch.is_grad_enabled():
            output["sentence_embedding"].register_hook(lambda g: torch.full_like(g, float("nan")))
        return output

    monkeypatch.setattr(loop, "backward_batch", counting)
    model.register_forward_hook(poison)
    out = tmp_path / "out"
    with pytest.warns(RuntimeWarning):
        metrics = loop.train(_config(_write(tmp_path, ROWS), out), model=model, evaluators=[])
    assert metrics["train"]["nonfinite_steps"] == 1 and [e["step"] for e in _events(out, "nonfinite")] == [2]
    assert all(math.isfinite(r["loss"]) for r in _events(out, "train"))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_too_many_nonfinite_steps_in_a_row_stop_with_a_clear_error(tmp_path, _tiny_model_session, monkeypatch):
    model = copy.deepcopy(_tiny_model_session)
    batches = {"n": 0}
    original = loop.backward_batch

    def counting(*args, **kwargs):
        batches["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "backward_batch", counting)
    _nan_hook(model, lambda ids: batches["n"] > 2)  # from step 3 on, every embedding is NaN
    out = tmp_path / "out"
    cfg = _config(_write(tmp_path, ROWS), out, epochs=2, save_steps=1, max_nonfinite_steps=2)
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteLossError) as info:
        loop.train(cfg, model=model, evaluators=[])
    message = str(info.value)
    assert "2 steps in a row (up to step 4)" in message and "checkpoint-2" in message
    assert "--max-nonfinite-steps" in message
    last = checkpoint.resolve_checkpoint("latest", out)
    assert last.name == "checkpoint-2"  # the last good checkpoint stays; no checkpoint of a skipped step
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(str(last / "model.safetensors")).values())
