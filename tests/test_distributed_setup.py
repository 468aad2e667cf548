"""Process setup around the loop: DataLoader workers, TOKENIZERS_PARALLELISM, bf16 / fp16, the new options."""

import json

import pytest
import torch

from sbert_triplet.config import build_train_config
from sbert_triplet.errors import ConfigError
from sbert_triplet.training import loop
from sbert_triplet.training.data_setup import make_loader

ADJ = "red blue green big small old young happy sad fast slow good bad new".split()
NOUN = "cat dog man woman child boy girl person".split()
ROWS = [{"anchor": f"a {ADJ[i % 14]} {NOUN[i % 8]} sits", "positive": f"the {ADJ[i % 14]} {NOUN[i % 8]} is sitting",
         "negative": f"{ADJ[(i + 5) % 14]} {NOUN[(i + 3) % 8]} runs fast"} for i in range(16)]


def _config(tmp_path, **extra):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return build_train_config({"train": str(path), "output_dir": str(tmp_path / "out"), "batch_size": 4,
                               "max_steps": 2, "log_steps": 1, "eval_before": False, **extra})


def _same(a, b) -> bool:
    """Deep equality of collated batches: tensors, dicts, lists and plain objects (e.g. an encode plan)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dict__"):
        return type(a) is type(b) and _same(vars(a), vars(b))
    return a == b


def _epochs(loader, sampler, n=2):
    batches = []
    for epoch in range(n):
        sampler.set_epoch(epoch)
        batches.extend(loader)
    return batches


@pytest.mark.parametrize("loss", ["mnr", "triplet"])  # no-duplicates and random samplers
def test_batches_with_workers_equal_those_without(tmp_path, tiny_model, loss, monkeypatch):
    from datasets import Dataset

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    dataset = Dataset.from_list([{"anchor": r["anchor"], "positive": r["positive"], "negative_1": r["negative"]}
                                 for r in ROWS])
    tiny_model.encode(["warm the fast tokenizer up in the parent"])  # the case that deadlocks without the setting
    plain = make_loader(dataset, tiny_model, _config(tmp_path, loss=loss))
    workers = make_loader(dataset, tiny_model, _config(tmp_path, loss=loss, num_workers=2))
    assert workers.num_workers == 2
    a, b = _epochs(plain, plain.batch_sampler), _epochs(workers, workers.batch_sampler)
    assert len(a) == len(b) == 8
    for x, y in zip(a, b):
        assert x["texts"] == y["texts"] and _same(x, y)
    assert a[:4] != a[4:]  # a new order each epoch


def test_train_sets_tokenizers_parallelism_only_when_unset(tmp_path, tiny_model, monkeypatch):
    import os

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    loop.train(_config(tmp_path, num_workers=1), model=tiny_model, evaluators=[])
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    loop.train(_config(tmp_path, max_steps=1), model=tiny_model, evaluators=[])
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"


def test_bf16_on_cpu_then_fp32_in_the_same_process(tmp_path, tiny_model):
    metrics = loop.train(_config(tmp_path, bf16=True), model=tiny_model, evaluators=[])
    start = json.loads((tmp_path / "out" / "train_log.jsonl").read_text().splitlines()[0])
    assert start["mixed_precision"] == "bf16" and metrics["train"]["steps"] == 2
    assert torch.isfinite(torch.tensor(metrics["train"]["final_loss"]))
    loop.train(_config(tmp_path), model=tiny_model, evaluators=[])  # a new precision needs no restart
    start = json.loads((tmp_path / "out" / "train_log.jsonl").read_text().splitlines()[0])
    assert start["mixed_precision"] == "no"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU answer to --fp16")
def test_fp16_on_cpu_is_a_clear_error(tmp_path, tiny_model):
    with pytest.raises(ConfigError, match="--fp16 needs a GPU.*use --bf16 on CPU"):
        loop.train(_config(tmp_path, fp16=True), model=tiny_model, evaluators=[])


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_gpu(tmp_path, tiny_model, precision):
    metrics = loop.train(_config(tmp_path, max_steps=4, **{precision: True}), model=tiny_model.to("cuda"),
                         evaluators=[])
    log = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["mixed_precision"] == precision and metrics["train"]["steps"] == 4
    assert all(torch.isfinite(p).all() for p in tiny_model.parameters())


@pytest.mark.parametrize("values, match", [
    ({"bf16": True, "fp16": True}, "either --bf16 or --fp16"),
    ({"loss": "triplet", "gather_across_devices": True}, "uses none"),
    ({"save_steps": 0}, "save_steps must be >= 1"),
    ({"max_nonfinite_steps": 0}, "max_nonfinite_steps must be >= 1"),
    ({"num_workers": -1}, "num_workers must be >= 0"),
])
def test_bad_options_say_what_to_do(tmp_path, values, match):
    with pytest.raises(ConfigError, match=match):
        _config(tmp_path, **values)


def test_cli_has_the_options():
    from typer.testing import CliRunner

    from sbert_triplet.cli import app

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    for flag in ("--gather-across-devices", "--save-steps", "--save-total-limit", "--resume-from-checkpoint",
                 "--max-nonfinite-steps", "--fp16", "--bf16", "--num-workers"):
        assert flag in result.output, flag


def test_cpu_bf16_detection_and_warning(tmp_path, tiny_model, monkeypatch):
    from sbert_triplet.training import distributed

    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16 amx_tile\n")
    assert distributed.cpu_has_bf16(str(info))
    info.write_text("processor : 0\nflags : fpu sse avx2\n")
    assert not distributed.cpu_has_bf16(str(info))
    assert not distributed.cpu_has_bf16(str(tmp_path / "missing"))
    monkeypatch.setattr(distributed, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without bf16 units.*--no-bf16"):
        loop.train(_config(tmp_path, bf16=True), model=tiny_model, evaluators=[])
