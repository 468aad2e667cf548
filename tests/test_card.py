"""The model card: written by training from what the run did, metrics equal to metrics.json,
a minimal card when the full one fails, and the card of an existing run folder."""

import json
import shutil

import pytest
from datasets import Dataset
from huggingface_hub import ModelCard

from sbert_triplet.config import build_train_config
from sbert_triplet.hub import card as card_module
from sbert_triplet.hub.card import MARKER, write_card
from sbert_triplet.hub.citations import BIBTEX, citation_keys
from sbert_triplet.training.loop import train

WORDS = ("red", "blue", "green", "big", "small", "old", "young", "happy")
PAIRS = {"anchor": [f"a {w} cat sits" for w in WORDS], "positive": [f"the {w} cat sits" for w in WORDS]}


class ToyEvaluator:
    """A retrieval-like and an STS-like figure computed from the model, so before != after."""

    name = "toy-eval"

    def __call__(self, model):
        emb = model.encode(["a red cat sits", "the dog runs", "a red cat"], convert_to_tensor=True)
        return {"ndcg@10": float(emb[0] @ emb[2]), "spearman_cosine": float(emb[0] @ emb[1])}


def _run(tmp_path, model, **extra):
    values = {"train": "in-memory", "output_dir": str(tmp_path / "out"), "batch_size": 4, "max_steps": 2,
              "log_steps": 1, "lr": 1e-3, **extra}
    metrics = train(build_train_config(values), model=model, train_dataset=Dataset.from_dict(PAIRS),
                    evaluators=[ToyEvaluator()])
    return tmp_path / "out", metrics


def test_training_writes_a_card_whose_metrics_equal_metrics_json(tmp_path, tiny_model):
    out, metrics = _run(tmp_path, tiny_model, mini_batch_size=2)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))  # metrics.json is still what train() returns
    assert set(saved["environment"]) == {"versions", "hardware", "model_loaded_from"}
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "sentence-transformers" and card.data.pipeline_tag == "sentence-similarity"
    assert {"sentence-transformers", "loss:mnr", "dataset_size:8"} <= set(card.data.tags)
    assert card.data.base_model is None  # the in-memory tiny model is no Hub model
    results = {f"{r.dataset_name}/{r.metric_type}": r.metric_value for r in card.data.eval_results}
    assert results == saved["after"]
    tasks = {r.metric_type: r.task_type for r in card.data.eval_results}
    assert tasks == {"ndcg@10": "information-retrieval", "spearman_cosine": "semantic-similarity"}
    text = card.text
    for key, value in saved["after"].items():
        before = saved["before"][key]
        assert f"| {before:.4f} | {value:.4f} | {value - before:+.4f} |" in text
    assert "| Gradient cache | on: mini-batches of 2 rows" in text
    assert "| Sampler | no-duplicates" in text and "| Seed | 42 |" in text and "| Optimizer steps | 2 |" in text
    assert "in-memory dataset | 8 |" in text
    assert saved["environment"]["versions"]["sentence-transformers"] in text
    assert "gao2021scaling" in text and "henderson2017efficient" in text and "reimers-2019-sentence-bert" in text
    assert 'SentenceTransformer("out")' in text


def test_card_failure_falls_back_to_a_minimal_card_and_keeps_the_model(tmp_path, tiny_model, monkeypatch):
    from sentence_transformers import SentenceTransformer

    def broken(facts):
        raise KeyError("boom")

    monkeypatch.setattr(card_module, "render_card", broken)
    out, _ = _run(tmp_path, tiny_model)
    text = (out / "README.md").read_text()
    assert text.startswith("---\nlibrary_name: sentence-transformers") and "could not be generated (KeyError)" in text
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    assert (out / "train_config.json").is_file()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any(r["event"] == "warning" and "model card: KeyError" in r["message"] for r in log)
    assert log[-1]["event"] == "end"
    SentenceTransformer(str(out), device="cpu")  # still a complete model folder


def test_card_of_an_existing_run_folder(tmp_path, tiny_model_dir):
    """A folder saved before cards existed: the card comes from its metrics.json / train_config.json."""
    folder = tmp_path / "old"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").unlink()
    metrics = {"before": {"scifact-test/ndcg@10": 0.5, "scifact-test/recall@100": 0.9},
               "after": {"scifact-test/ndcg@10": 0.625, "scifact-test/recall@100": 0.95},
               "train": {"steps": 28, "epochs": 1, "examples": 896, "final_loss": 0.3, "train_runtime_s": 294.35},
               "data": {"source": "scifact", "kind": "beir", "split": "train", "rows_read": 919, "rows_dropped": 0,
                        "rows": 919, "mining": {"config": {"candidates": "dense", "range_max": 50},
                                                "counts": {"queries": 809, "removed_false_negative": 8687}}}}
    config = build_train_config({"train": "../shared/data/scifact", "output_dir": str(folder),
                                 "eval_ir": "../shared/data/scifact", "loss": "triplet", "swap": True}).to_dict()
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "train_config.json").write_text(json.dumps(config))
    card = ModelCard.load(write_card(folder))
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # no --model: the packaged default
    assert card.data.datasets is None  # local folders are no Hub datasets
    assert {f"{r.dataset_name}/{r.metric_type}": r.metric_value for r in card.data.eval_results} == metrics["after"]
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert "hard-negative-mining" in card.data.tags
    assert "local folder `../shared/data/scifact` | 919 |" in card.text
    assert "| removed_false_negative | 8687 |" in card.text and "| range_max | 50 |" in card.text
    assert "Hardware: not recorded by this run" in card.text
    assert "schroff2015facenet" in card.text and "balntas2016learning" in card.text
    assert "moreira2024nvretriever" in card.text and MARKER in card.text


def test_hub_datasets_go_into_the_yaml_header(tmp_path, tiny_model_dir):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    config = build_train_config({"train": "sentence-transformers/all-nli", "output_dir": str(folder),
                                 "eval_sts": "sentence-transformers/stsb", "model": "BAAI/bge-small-en-v1.5"})
    (folder / "train_config.json").write_text(json.dumps(config.to_dict()))
    (folder / "metrics.json").write_text(json.dumps({"after": {"stsb/spearman_cosine": 0.8}, "data": {"rows": 5}}))
    card = ModelCard.load(write_card(folder, repo_id="me/my-model"))
    assert card.data.datasets == ["sentence-transformers/all-nli", "sentence-transformers/stsb"]
    assert card.data.base_model == "BAAI/bge-small-en-v1.5"
    assert card.data.eval_results[0].dataset_type == "sentence-transformers/stsb"
    assert 'SentenceTransformer("me/my-model")' in card.text


@pytest.mark.parametrize("loss, extra, expected", [
    ("mnr", {}, ["sbert", "henderson", "infonce"]),
    ("mnr-symmetric", {}, ["sbert", "henderson", "infonce", "yang"]),
    ("triplet", {"soft_margin": True}, ["sbert", "facenet", "hermans"]),
    ("batch-hard", {}, ["sbert", "hermans"]),
    ("ladder", {}, ["sbert", "ladder"]),
])
def test_citations_per_loss(loss, extra, expected):
    assert citation_keys({"loss": loss, **extra}) == expected
    assert citation_keys({"loss": loss, **extra}, grad_cache=True, mined=True)[-2:] == ["gradcache", "nv-retriever"]
    assert all(BIBTEX[key].startswith("@") and BIBTEX[key].rstrip().endswith("}") for key in expected)
