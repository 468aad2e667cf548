"""`sbert-triplet index` and `sbert-triplet search` end to end on the tiny model."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from sbert_triplet.cli import app, main
from sbert_triplet.data.beir import load_retrieval_set
from sbert_triplet.evaluation import evaluate_retrieval

runner = CliRunner()

DOCS = {
    "d1": "the red cat sits in the house",
    "d2": "a dog runs in the park",
    "d3": "the man plays the guitar",
    "d4": "a child eats food on the beach",
    "d5": "the old woman reads a book",
    "d6": "two boys play with a ball",
}
QUERIES = {"q1": "a cat in a house", "q2": "dog running park", "q3": "music guitar", "q4": "nothing judged"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 2), ("q2", "d6", 1), ("q3", "d3", 1), ("q4", "d4", 0)]


@pytest.fixture
def beir_dir(tmp_path):
    folder = tmp_path / "toy"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in DOCS.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS))
    return folder


def build(tmp_path, tiny_model_dir, beir_dir, *extra):
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", "--model", str(tiny_model_dir), "--corpus", str(beir_dir), "--output", str(out),
                                 "--chunk-size", "4", "--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


@pytest.mark.parametrize("backend", ["exact", "faiss-hnsw"])
def test_index_then_search_json_and_table(tmp_path, tiny_model_dir, beir_dir, backend):
    out, report = build(tmp_path, tiny_model_dir, beir_dir, "--backend", backend)
    assert report["num_docs"] == 6 and report["num_chunks"] == 2 and report["backend"] == backend
    result = runner.invoke(app, ["search", "--index", str(out), "--query", DOCS["d5"], "--query", "a dog", "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [p["query"] for p in payload] == [DOCS["d5"], "a dog"]
    top = payload[0]["hits"][0]
    assert top == {"rank": 1, "id": "d5", "score": pytest.approx(1.0, abs=1e-5), "text": DOCS["d5"]}
    assert len(payload[1]["hits"]) == 3
    table = runner.invoke(app, ["search", "--index", str(out), "--queries", str(beir_dir / "queries.jsonl"), "--k", "2"])
    assert table.exit_code == 0, table.output
    assert "query q1: a cat in a house" in table.output and table.stdout.count("\n   1  ") == 4


def test_search_with_qrels_equals_the_evaluator(tmp_path, tiny_model, tiny_model_dir, beir_dir):
    out, _ = build(tmp_path, tiny_model_dir, beir_dir)
    result = runner.invoke(app, ["search", "--index", str(out), "--queries", str(beir_dir),
                                 "--qrels", str(beir_dir / "qrels" / "test.tsv"), "--ks", "1,3"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    expected = evaluate_retrieval(tiny_model, load_retrieval_set(beir_dir, "test"), ks=(1, 3))
    assert set(metrics) == set(expected) == {f"{m}@{k}" for m in ("ndcg", "mrr", "recall", "precision", "map") for k in (1, 3)}
    for key in expected:
        assert metrics[key] == pytest.approx(expected[key], abs=1e-6), key


def test_search_with_another_model_exits_2_and_says_so(tmp_path, monkeypatch, capsys, tiny_model_dir, beir_dir):
    from sentence_transformers import SentenceTransformer

    out, _ = build(tmp_path, tiny_model_dir, beir_dir)
    other = SentenceTransformer(str(tiny_model_dir), device="cpu")
    other[0].auto_model.embeddings.word_embeddings.weight.data.mul_(-1.0)
    other.save_pretrained(str(tmp_path / "other"))
    monkeypatch.setattr(sys, "argv", ["sbert-triplet", "search", "--index", str(out), "--query", "a cat",
                                      "--model", str(tmp_path / "other")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the model-loading progress bar
    assert err.startswith("error: this index was built with a different model") and str(tmp_path / "other") in err
    monkeypatch.setattr(sys, "argv", ["sbert-triplet", "search", "--index", str(out)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and "--query" in capsys.readouterr().err
