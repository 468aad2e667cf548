"""The training loop on the tiny model, and (marked `real`) on all-MiniLM-L6-v2 with SNLI."""

import json
import math

import pytest
import torch

from sbert_triplet.config import build_train_config
from sbert_triplet.errors import ConfigError, DataSchemaError
from sbert_triplet.training.loop import train

ROWS = [
    {"negative": f"the {n} dog runs", "anchor": f"a {a} cat sits", "positive": f"the {a} cat sits", "id": f"ID-{i:04d}"}
    for i, (a, n) in enumerate(
        [("red", "blue"), ("big", "small"), ("old", "young"), ("happy", "sad"), ("fast", "slow"), ("good", "bad"),
         ("new", "old"), ("blue", "green"), ("small", "big"), ("green", "red")]
    )
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path, train_path, **extra):
    values = {"train": str(train_path), "output_dir": str(tmp_path / "out"), "batch_size": 4, "max_steps": 3,
              "log_steps": 1, "lr": 1e-3, **extra}
    return build_train_config(values)


def test_columns_are_chosen_by_name_and_id_is_never_text(tmp_path, tiny_model):
    path = _write_jsonl(tmp_path / "t.jsonl", ROWS)  # column order: negative, anchor, positive, id
    seen: list[list[str]] = []
    original = tiny_model.preprocess

    def recording_preprocess(texts, *args, **kwargs):
        seen.append(list(texts))
        return original(texts, *args, **kwargs)

    tiny_model.preprocess = recording_preprocess
    metrics = train(_config(tmp_path, path, loss="triplet"), model=tiny_model, evaluators=[])
    assert metrics["train"]["steps"] == 3
    assert metrics["train"]["epochs"] == 1  # 10 rows in batches of 4: the triplet loss keeps the last batch of 2
    texts = [t for call in seen for t in call]
    assert texts and not any(t.startswith("ID-") for t in texts)
    anchors = {r["anchor"] for r in ROWS}
    positives = {r["positive"] for r in ROWS}
    negatives = {r["negative"] for r in ROWS}
    assert anchors | positives | negatives == set(texts)
    # every distinct text is tokenised once, when the loader is built, columns in the order
    # anchor, positive, negative_1 (the file's order is negative, anchor, positive, id)
    by_column = [r["anchor"] for r in ROWS] + [r["positive"] for r in ROWS] + [r["negative"] for r in ROWS]
    assert texts == list(dict.fromkeys(by_column))


def test_a_partial_last_epoch_counts_as_its_fraction(tmp_path, tiny_model):
    path = _write_jsonl(tmp_path / "t.jsonl", ROWS)
    metrics = train(_config(tmp_path, path, loss="triplet", max_steps=5), model=tiny_model, evaluators=[])
    assert metrics["train"]["steps"] == 5 and metrics["train"]["epochs"] == 1.67  # 3 batches per epoch


def test_outputs_log_and_metrics(tmp_path, tiny_model, shared_data):
    from sentence_transformers import SentenceTransformer

    from sbert_triplet.evaluation.build import build_evaluators

    path = _write_jsonl(tmp_path / "t.jsonl", ROWS)
    evaluators = build_evaluators(sts=str(shared_data / "sick" / "SICK_trial.txt"))
    metrics = train(_config(tmp_path, path, loss="mnr"), model=tiny_model, evaluators=evaluators)
    out = tmp_path / "out"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["before"].keys() == saved["after"].keys() == {"SICK_trial/spearman_cosine", "SICK_trial/pearson_cosine"}
    assert saved == json.loads(json.dumps(metrics))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["event"] == "train"]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert [r["event"] for r in log][0] == "start" and log[-1]["event"] == "end"
    reloaded = SentenceTransformer(str(out), device="cpu")
    tiny_model.eval()
    a = tiny_model.encode(["a red cat sits"], convert_to_tensor=True)
    b = reloaded.encode(["a red cat sits"], convert_to_tensor=True)
    assert torch.allclose(a, b, atol=1e-6)


def test_in_batch_negative_loss_drops_incomplete_last_batch(tmp_path, tiny_model):
    path = _write_jsonl(tmp_path / "t.jsonl", ROWS)  # 10 rows, batch 4 -> 2 full batches per epoch
    cfg = build_train_config({"train": str(path), "output_dir": str(tmp_path / "o"), "batch_size": 4, "epochs": 1,
                              "loss": "mnr"})
    assert train(cfg, model=tiny_model, evaluators=[])["train"]["examples"] == 8
    cfg = build_train_config({"train": str(path), "output_dir": str(tmp_path / "o2"), "batch_size": 4, "epochs": 1,
                              "loss": "triplet"})
    assert train(cfg, model=tiny_model, evaluators=[])["train"]["examples"] == 10


def test_triplet_loss_without_negatives_is_a_clear_error(tmp_path, tiny_model):
    path = _write_jsonl(tmp_path / "p.jsonl", [{"anchor": r["anchor"], "positive": r["positive"]} for r in ROWS])
    with pytest.raises(ConfigError, match="needs a negative column"):
        train(_config(tmp_path, path, loss="triplet"), model=tiny_model, evaluators=[])


def test_impossible_margin_for_normalized_model(tmp_path, tiny_model):
    path = _write_jsonl(tmp_path / "t.jsonl", ROWS)
    with pytest.raises(ValueError, match="never"):
        train(_config(tmp_path, path, loss="triplet", margin=2.5), model=tiny_model, evaluators=[])


def test_empty_text_gets_the_named_error(tmp_path, tiny_model):
    rows = [dict(r) for r in ROWS]
    rows[6]["positive"] = "   "
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataSchemaError) as info:
        train(_config(tmp_path, path, loss="mnr"), model=tiny_model, evaluators=[])
    message = str(info.value)
    assert "bad.jsonl" in message and "6" in message and "positive" in message


@pytest.mark.real
def test_minilm_ten_steps_on_snli(tmp_path, minilm_path, shared_data):
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    cfg = build_train_config({
        "model": minilm_path, "train": str(shared_data / "snli" / "snli_triplets_test.jsonl.gz"),
        "output_dir": str(tmp_path / "minilm"), "loss": "triplet", "batch_size": 8, "max_steps": 10,
        "max_seq_length": 64, "log_steps": 5,
    })
    metrics = train(cfg, evaluators=[])
    assert metrics["train"]["steps"] == 10 and math.isfinite(metrics["train"]["final_loss"])
    base = SentenceTransformer(minilm_path, device="cpu")
    tuned = SentenceTransformer(str(tmp_path / "minilm"), device="cpu")
    texts = ["A man is playing a guitar.", "Two dogs run on the beach."]
    e0 = base.encode(texts, convert_to_tensor=True)
    e1 = tuned.encode(texts, convert_to_tensor=True)
    assert e1.shape == (2, 384)
    assert torch.allclose(e1.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert (e0 - e1).abs().max().item() > 1e-4
    torch.set_num_threads(1)
