"""Exact resume on the tiny model: 16 rows, batch 4, seed 42, 2 epochs (8 steps), dropout on.

A run stopped after step 6 (or killed during the checkpoint write of step 4) and resumed
with ``resume_from_checkpoint="latest"`` gives the uninterrupted run's batches, learning
rates and losses for the remaining steps, and the same final weights.
"""

import copy
import json

import pytest
import torch

from sbert_triplet.config import build_train_config
from sbert_triplet.errors import ConfigError
from sbert_triplet.training import checkpoint, loop

ADJ = "red blue green big small old young happy sad fast slow good bad new".split()
NOUN = "cat dog man woman child boy girl person".split()
ROWS = [{"anchor": f"a {ADJ[i % 14]} {NOUN[i % 8]} sits", "positive": f"the {ADJ[i % 14]} {NOUN[i % 8]} is sitting",
         "negative": f"{ADJ[(i + 5) % 14]} {NOUN[(i + 3) % 8]} runs fast"} for i in range(16)]


class _Stop(Exception):
    """Stands for a kill: the process ends without any clean-up."""


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _config(data, out, **extra):
    return build_train_config({"train": str(data), "output_dir": str(out), "loss": "mnr", "batch_size": 4,
                               "epochs": 2, "seed": 42, "lr": 1e-3, "log_steps": 1, "eval_before": False,
                               "save_steps": 2, **extra})


@pytest.fixture
def record(monkeypatch):
    """Anchor texts of every batch the loop trains on, in order."""
    batches: list[list[str]] = []
    original = loop.backward_batch

    def recording(model, objective, batch, *args, **kwargs):
        batches.append(list(batch["texts"]["anchor"]))
        return original(model, objective, batch, *args, **kwargs)

    monkeypatch.setattr(loop, "backward_batch", recording)
    return batches


def _train_log(out):
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in lines if r["event"] == "train"}


def _stop_after(monkeypatch, step):
    original = loop.save_checkpoint

    def save_then_stop(accelerator, output_dir, state, limit):
        folder = original(accelerator, output_dir, state, limit)
        if state.step == step:
            raise _Stop(step)
        return folder

    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)


def _max_weight_diff(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


def test_resume_after_step_6_gives_the_uninterrupted_run(tmp_path, data, record, monkeypatch, _tiny_model_session):
    whole_model = copy.deepcopy(_tiny_model_session)
    loop.train(_config(data, tmp_path / "whole"), model=whole_model, evaluators=[])
    whole_batches, whole_log = list(record), _train_log(tmp_path / "whole")
    assert sorted(whole_log) == list(range(1, 9))
    rows = {r["anchor"] for r in ROWS}
    assert sorted(a for b in whole_batches[:4] for a in b) == sorted(rows)  # epoch 0: every row once
    assert sorted(a for b in whole_batches[4:] for a in b) == sorted(rows)  # epoch 1: every row once
    assert whole_batches[:4] != whole_batches[4:]  # a new order per epoch

    record.clear()
    out = tmp_path / "stopped"
    _stop_after(monkeypatch, 6)
    with pytest.raises(_Stop):
        loop.train(_config(data, out), model=copy.deepcopy(_tiny_model_session), evaluators=[])
    assert record == whole_batches[:6]
    monkeypatch.undo()  # the recorder too; record again below
    record_resumed: list[list[str]] = []
    original = loop.backward_batch
    monkeypatch.setattr(loop, "backward_batch", lambda m, o, b, *a, **k: (
        record_resumed.append(list(b["texts"]["anchor"])), original(m, o, b, *a, **k))[1])

    resumed_model = copy.deepcopy(_tiny_model_session)
    metrics = loop.train(_config(data, out, resume_from_checkpoint="latest"), model=resumed_model, evaluators=[])
    assert record_resumed == whole_batches[6:]  # steps 7 and 8: the same batches
    resumed_log = _train_log(out)
    for step in (7, 8):
        assert resumed_log[step]["lr"] == whole_log[step]["lr"]
        assert abs(resumed_log[step]["loss"] - whole_log[step]["loss"]) < 1e-6
    assert metrics["train"]["steps"] == 8 and metrics["train"]["examples"] == 32
    assert _max_weight_diff(resumed_model, whole_model) < 1e-6


def test_kill_during_a_checkpoint_write_leaves_latest_intact(tmp_path, data, monkeypatch, _tiny_model_session):
    whole_model = copy.deepcopy(_tiny_model_session)
    loop.train(_config(data, tmp_path / "whole", save_total_limit=2), model=whole_model, evaluators=[])
    root = checkpoint.checkpoint_root(tmp_path / "whole")
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-6", "checkpoint-8"]  # --save-total-limit 2

    from accelerate import Accelerator

    original = Accelerator.save_state

    def half_written(self, output_dir=None, **kwargs):
        original(self, output_dir, **kwargs)
        if output_dir.endswith("checkpoint-4"):
            (checkpoint.Path(output_dir) / "optimizer.bin").write_bytes(b"trunc")  # cut off mid-file
            raise _Stop("killed while writing checkpoint 4")

    monkeypatch.setattr(Accelerator, "save_state", half_written)
    out = tmp_path / "killed"
    with pytest.raises(_Stop):
        loop.train(_config(data, out), model=copy.deepcopy(_tiny_model_session), evaluators=[])
    root = checkpoint.checkpoint_root(out)
    assert sorted(p.name for p in root.iterdir()) == [".tmp-checkpoint-4", "checkpoint-2"]
    assert checkpoint.resolve_checkpoint("latest", out).name == "checkpoint-2"
    monkeypatch.undo()

    resumed_model = copy.deepcopy(_tiny_model_session)
    loop.train(_config(data, out, resume_from_checkpoint="latest"), model=resumed_model, evaluators=[])
    assert _max_weight_diff(resumed_model, whole_model) < 1e-6
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())  # the next save cleaned it up


def test_resume_with_other_batches_or_nothing_to_resume_is_a_clear_error(tmp_path, data, _tiny_model_session):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        loop.train(_config(data, out, resume_from_checkpoint="latest"), model=_tiny_model_session, evaluators=[])
    with pytest.raises(ConfigError, match="not a complete checkpoint"):
        loop.train(_config(data, out, resume_from_checkpoint=str(tmp_path)), model=_tiny_model_session,
                   evaluators=[])
    loop.train(_config(data, out, epochs=1, save_steps=2), model=copy.deepcopy(_tiny_model_session), evaluators=[])
    with pytest.raises(ConfigError, match="--batch-size 4 \\(now 8\\)"):
        loop.train(_config(data, out, batch_size=8, resume_from_checkpoint="latest"),
                   model=copy.deepcopy(_tiny_model_session), evaluators=[])
    # a longer run would restore the old schedule (lr 0 at its end) and waste steps: an error
    with pytest.raises(ConfigError, match="total steps .* 4 \\(now 6\\)"):
        loop.train(_config(data, out, max_steps=6, resume_from_checkpoint="latest"),
                   model=copy.deepcopy(_tiny_model_session), evaluators=[])
    assert oct((out / "metrics.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert oct((out / "README.md").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_trainer_state_round_trip_and_checkpoint_contents(tmp_path, data, _tiny_model_session):
    out = tmp_path / "run"
    loop.train(_config(data, out, epochs=1, save_steps=3), model=copy.deepcopy(_tiny_model_session), evaluators=[])
    folder = checkpoint.resolve_checkpoint("latest", out)
    assert folder.name == "checkpoint-3"
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
            "custom_checkpoint_0.pkl", "trainer_state.json"} <= names
    state = json.loads((folder / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["batches_in_epoch"], state["seed"]) == (3, 0, 3, 42)
    restored = checkpoint.TrainerState()
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "checkpoint"] == [3]
    assert torch.isfinite(torch.tensor([r["loss"] for r in log if r["event"] == "train"])).all()


@pytest.mark.real
def test_minilm_on_snli_stopped_and_resumed_equals_uninterrupted(tmp_path, minilm_path, shared_data, monkeypatch):
    from safetensors.torch import load_file

    torch.set_num_threads(2)
    data = shared_data / "snli" / "snli_triplets_dev.jsonl.gz"
    values = {"model": minilm_path, "train": str(data), "drop_invalid": True, "loss": "mnr", "batch_size": 8,
              "max_steps": 4, "save_steps": 2, "max_seq_length": 32, "lr": 1e-4, "eval_before": False}
    loop.train(build_train_config({**values, "output_dir": str(tmp_path / "whole")}), evaluators=[])
    _stop_after(monkeypatch, 2)
    with pytest.raises(_Stop):
        loop.train(build_train_config({**values, "output_dir": str(tmp_path / "cut")}), evaluators=[])
    monkeypatch.undo()
    loop.train(build_train_config({**values, "output_dir": str(tmp_path / "cut"), "resume_from_checkpoint": "latest"}),
               evaluators=[])
    whole, resumed = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("whole", "cut"))
    assert max((whole[k] - resumed[k]).abs().max().item() for k in whole) < 1e-6
