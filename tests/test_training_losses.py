"""Every loss trains in the loop on the tiny model; gradient cache, accumulation, labelled / scored data."""

import json
import math
import warnings

import pytest
import torch

from sbert_triplet.config import LOSSES, build_train_config
from sbert_triplet.data.labelled import load_labelled, load_scored_pairs
from sbert_triplet.errors import ConfigError, DataSchemaError
from sbert_triplet.training.loop import train
from sbert_triplet.training.objective import ladder_levels

ADJ = ["red", "big", "old", "happy", "fast", "good", "new", "blue", "small", "green", "sad", "slow"]
NOUNS = ["cat", "dog", "man", "woman"]


def _words(start: int, n: int) -> str:
    # texts of different lengths: encodings must differ for the gradients to say anything
    return " ".join(ADJ[(start + k) % len(ADJ)] for k in range(n))


TRIPLETS = [{"anchor": f"a {_words(i, 1 + i % 4)} cat", "positive": f"the {_words(i + 1, 1 + (i + 1) % 5)} cat sits",
             "negative": f"the {_words(i + 5, 1 + (i + 2) % 3)} dog"} for i in range(12)]
LABELLED = [{"sentence": f"the {_words(j + 3 * n, 1 + (j + n) % 5)} {noun}", "label": noun, "id": 4 * n + j}
            for n, noun in enumerate(NOUNS) for j in range(4)]  # 4 labels x 4 rows
SCORED = [{"sentence1": f"a {_words(i, 1 + i % 4)} cat", "sentence2": f"the {_words(i + 2, 1 + i % 3)} cat sits",
           "score": float(i % 6)} for i in range(12)]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _data_for(loss, tmp_path):
    if loss in ("batch-all", "batch-hard", "batch-semi-hard", "batch-hard-soft-margin"):
        return _jsonl(tmp_path / "labelled.jsonl", LABELLED)
    if loss == "ladder":
        return _jsonl(tmp_path / "scored.jsonl", SCORED)
    return _jsonl(tmp_path / "triplets.jsonl", TRIPLETS)


def _run(tmp_path, model, loss, **extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    values = {"train": str(_data_for(loss, tmp_path)), "output_dir": str(tmp_path / "out"), "loss": loss,
              "batch_size": 4, "max_steps": 2, "log_steps": 1, "lr": 1e-3, **extra}
    metrics = train(build_train_config(values), model=model, evaluators=[])
    log = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    return metrics, [r for r in log if r["event"] == "train"], log


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_two_steps_with_a_finite_loss(tmp_path, tiny_model, loss):
    metrics, records, _ = _run(tmp_path, tiny_model, loss)
    assert metrics["train"]["steps"] == 2 and len(records) == 2
    assert all(math.isfinite(r["loss"]) for r in records)
    if loss in ("mnr", "mnr-symmetric"):  # 4 positives + 4 hard negatives, own positive excluded
        assert all(r["negatives_per_anchor"] == 7 for r in records)
    if loss.startswith("batch") or loss == "triplet":
        assert all("num_triplets" in r or "num_active" in r for r in records)
    if loss == "ladder":
        assert all("num_pairs" in r for r in records)


def test_false_negatives_are_masked_and_counted(tmp_path, tiny_model):
    rows = [dict(r) for r in TRIPLETS[:8]]
    for r in rows:
        r["positive"] = "the same cat"  # every positive is every other row's false negative
    path = _jsonl(tmp_path / "dup.jsonl", rows)
    values = {"train": str(path), "output_dir": str(tmp_path / "o"), "loss": "mnr", "batch_size": 4,
              "max_steps": 1, "log_steps": 1, "sampler": "random"}
    train(build_train_config(values), model=tiny_model, evaluators=[])
    record = [json.loads(x) for x in (tmp_path / "o" / "train_log.jsonl").read_text().splitlines()][-3]
    assert record["event"] == "train"
    assert record["masked_false_negatives"] == 12 and record["negatives_per_anchor"] == 4  # 7 - 3 duplicates


def _without_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def _first_step_gradients(tmp_path, model, loss, **extra):
    """Train 2 steps; return the loss log and the gradients the optimizer saw at step 1."""
    seen = []

    def record(optimizer, args, kwargs):
        if not seen:
            seen.append([p.grad.detach().clone() for group in optimizer.param_groups for p in group["params"]
                         if p.grad is not None])

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(record)
    try:
        _, records, log = _run(tmp_path, model, loss, batch_size=8, max_steps=2, **extra)
    finally:
        handle.remove()
    return records, log, seen[0]


@pytest.mark.parametrize("loss", ["mnr", "batch-hard"])
def test_gradient_cache_in_the_loop_gives_the_big_batch_gradients(tmp_path, tiny_model, loss):
    import copy

    plain, cached = _without_dropout(tiny_model), _without_dropout(copy.deepcopy(tiny_model))
    plain_log, _, plain_grads = _first_step_gradients(tmp_path / "plain", plain, loss)
    cached_log, start, cached_grads = _first_step_gradients(tmp_path / "cached", cached, loss, mini_batch_size=2)
    assert start[0]["grad_cache"] is True and len(cached_log) == 2
    assert [r["loss"] for r in cached_log] == pytest.approx([r["loss"] for r in plain_log], abs=1e-5)
    assert len(cached_grads) == len(plain_grads) and max(g.abs().max().item() for g in plain_grads) > 1e-3
    assert max((a - b).abs().max().item() for a, b in zip(plain_grads, cached_grads)) < 1e-5


def test_accumulation_warns_once_for_in_batch_negative_losses(tmp_path, tiny_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics, _, log = _run(tmp_path, tiny_model, "mnr", gradient_accumulation_steps=2, max_steps=1)
    messages = [str(w.message) for w in caught if "adds no in-batch negatives" in str(w.message)]
    assert len(messages) == 1 and "--mini-batch-size 4" in messages[0] and "--batch-size 8" in messages[0]
    assert [r["event"] for r in log].count("warning") == 1
    assert metrics["train"]["steps"] == 1 and metrics["train"]["examples"] == 8  # 1 step = 2 batches x 4 rows


def test_accumulation_does_not_warn_for_the_triplet_loss(tmp_path, tiny_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(tmp_path, tiny_model, "triplet", gradient_accumulation_steps=2)
    assert not [w for w in caught if "in-batch negatives" in str(w.message)]


def test_an_option_the_loss_does_not_take_is_an_error(tmp_path, tiny_model):
    with pytest.raises(ConfigError, match="--swap does not apply to the mnr loss"):
        _run(tmp_path, tiny_model, "mnr", swap=True)
    with pytest.raises(ConfigError, match="--distance does not apply to the ladder loss"):
        _run(tmp_path, tiny_model, "ladder", distance="cosine")


def test_pk_sampler_without_enough_labels_is_a_config_error(tmp_path, tiny_model):
    path = _jsonl(tmp_path / "few.jsonl", [{"text": f"the {a} cat", "label": 0} for a in ADJ[:8]])
    values = {"train": str(path), "output_dir": str(tmp_path / "o"), "loss": "batch-hard", "batch_size": 4}
    with pytest.raises(ConfigError, match="--sampler pk"):
        train(build_train_config(values), model=tiny_model, evaluators=[])


def test_load_labelled_chooses_columns_by_name_and_keeps_labels(tmp_path):
    dataset, report = load_labelled(_jsonl(tmp_path / "l.jsonl", LABELLED))
    assert dataset.column_names == ["text", "label"] and dataset[0] == {"text": "the red cat", "label": "cat"}
    assert dataset["label"] == [r["label"] for r in LABELLED]
    assert report["columns"] == {"text": "sentence", "label": "label"} and report["num_labels"] == 4
    rows = [{"y": i % 2, "body": f"the {a} dog", "text": "ignored"} for i, a in enumerate(ADJ[:4])]
    dataset, _ = load_labelled(_jsonl(tmp_path / "m.jsonl", rows), columns="text=body,label=y")
    assert dataset["label"] == [0, 1, 0, 1] and dataset["text"][0] == "the red dog"


@pytest.mark.parametrize("bad, message", [(None, "label must be"), (1.5, "label must be"), ("x", "mix int and str")])
def test_load_labelled_rejects_bad_labels(tmp_path, bad, message):
    rows = [{"text": "a cat", "label": 1}, {"text": "a dog", "label": bad}]
    with pytest.raises(DataSchemaError, match=message) as info:
        load_labelled(_jsonl(tmp_path / "bad.jsonl", rows))
    assert info.value.row == 1 and info.value.column == "label"


def test_load_labelled_drops_invalid_rows_and_counts_them(tmp_path):
    rows = [{"text": "a cat", "label": 1}, {"text": "a dog", "label": None}, {"text": " ", "label": 2}]
    dataset, report = load_labelled(_jsonl(tmp_path / "bad.jsonl", rows), drop_invalid=True)
    assert dataset["text"] == ["a cat"] and report["rows_read"] == 3 and report["rows_dropped"] == 2
    assert report["dropped_by_reason"]["invalid_label"] == 1 and report["dropped_by_reason"]["empty"] == 1


def test_load_scored_pairs_from_an_sts_file_and_a_table(tmp_path, shared_data):
    dataset, report = load_scored_pairs(shared_data / "sick" / "SICK_trial.txt")
    assert dataset.column_names == ["anchor", "positive", "score"] and len(dataset) == 500
    rows = [{"b": "the cat", "a": "a cat", "s": 4.5}]
    dataset, _ = load_scored_pairs(_jsonl(tmp_path / "p.jsonl", rows), columns="sentence1=a,sentence2=b,score=s")
    assert dataset[0] == {"anchor": "a cat", "positive": "the cat", "score": 4.5}
    with pytest.raises(DataSchemaError, match="score must be a finite number"):
        load_scored_pairs(_jsonl(tmp_path / "q.jsonl", [{**rows[0], "s": "high"}]), columns="sentence1=a,sentence2=b,score=s")


def test_ladder_levels_bucket_scores_by_the_documented_rule():
    assert ladder_levels([0.0, 1.0, 1.3, 2.5, 3.7, 3.8, 5.0], 2) == [0, 0, 1, 1, 1, 2, 2]
    assert ladder_levels([1.0, 5.0, 3.0], 4) == [0, 4, 2]
    assert ladder_levels([3.0, 3.0], 2) == [2, 2]
