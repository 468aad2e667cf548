"""`sbert-triplet mine` end to end on a tiny BEIR folder and the tiny random BERT."""

import json

import pytest
from typer.testing import CliRunner

from sbert_triplet.cli import app

runner = CliRunner()

DOCS = {
    "d1": "the cat sits in the house", "d2": "the dog runs in the park", "d3": "a red car on the street",
    "d4": "the boy plays the guitar", "d5": "the cat eats food", "d6": "old man walks to the house",
    "d7": "children play with a dog", "d8": "a woman plays the piano", "d9": "the cell protein gene study",
    "d10": "a boy plays in the park with a dog", "d11": "a cat and a guitar in the house",
}
QUERIES = {"q1": "cat in the house", "q2": "dog in the park", "q3": "boy with a guitar", "q4": "unjudged"}
QRELS = [("q1", "d1"), ("q2", "d2"), ("q3", "d4"), ("q3", "d8")]


@pytest.fixture
def beir_folder(tmp_path):
    folder = tmp_path / "tiny_beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in DOCS.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()))
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS))
    return folder


def _mine(args):
    result = runner.invoke(app, ["mine", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("candidates", ["dense", "bm25", "both"])
def test_mine_writes_a_file_train_reads(tmp_path, tiny_model_dir, beir_folder, candidates):
    from sbert_triplet.data import load_triplets

    out = tmp_path / "mined.jsonl"
    result = _mine(["--model", str(tiny_model_dir), "--data", str(beir_folder), "--output", str(out),
                    "--candidates", candidates, "--num-negatives", "2", "--max-score-ratio", "1.0"])
    assert "rows_written" in result.output
    report = json.loads((tmp_path / "mined.report.json").read_text())
    assert (tmp_path / "mined.scores.png").stat().st_size > 0
    counts = report["counts"]
    assert counts["queries"] == 3 and report["config"]["candidates"] == candidates
    assert counts["rows_written"] + counts["rows_dropped_short"] == len(QRELS)
    assert counts["rows_written"] > 0
    dataset, info = load_triplets(out)
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert len(dataset) == counts["rows_written"]
    positives_of = {QUERIES[q]: {DOCS[d] for qq, d in QRELS if qq == q} for q, _ in QRELS}
    for row in dataset:
        negatives = [row["negative_1"], row["negative_2"]]
        assert len(set(negatives)) == 2 and not set(negatives) & positives_of[row["anchor"]]


def test_mine_margin_and_random_sampling(tmp_path, tiny_model_dir, beir_folder):
    out = tmp_path / "m.jsonl"
    _mine(["--model", str(tiny_model_dir), "--data", str(beir_folder), "--output", str(out), "--margin", "0.0",
           "--sampling", "random", "--seed", "3", "--range-min", "1", "--range-max", "5"])
    report = json.loads((tmp_path / "m.report.json").read_text())
    assert report["config"]["margin"] == 0.0 and report["config"]["max_score_ratio"] is None
    assert report["counts"]["removed_known_positive"] >= 4


def test_mine_rejects_ratio_and_margin_together(tmp_path, tiny_model_dir, beir_folder):
    result = runner.invoke(app, ["mine", "--model", str(tiny_model_dir), "--data", str(beir_folder), "--output", str(tmp_path / "x.jsonl"),
                                 "--max-score-ratio", "0.9", "--margin", "0.1"])
    assert result.exit_code != 0


def test_mine_pairs_file_with_library_api(tmp_path, tiny_model, beir_folder):
    from sbert_triplet.data import load_triplets
    from sbert_triplet.mining import MiningConfig, run_mining

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"anchor": QUERIES[q], "positive": DOCS[d]}) + "\n" for q, d in QRELS)
                     + "".join(json.dumps({"anchor": t, "positive": t + " too"}) + "\n" for t in DOCS.values()))
    report = run_mining(tiny_model, pairs, tmp_path / "p.jsonl.gz", MiningConfig(max_score_ratio=1.0))
    assert report["counts"]["queries"] == 3 + len(DOCS)
    assert (tmp_path / "p.report.json").is_file() and (tmp_path / "p.scores.png").is_file()
    if report["counts"]["rows_written"]:
        dataset, _ = load_triplets(tmp_path / "p.jsonl.gz")
        assert dataset.column_names == ["anchor", "positive", "negative_1"]


def test_mine_without_the_false_negative_filter(tmp_path, tiny_model_dir, beir_folder):
    out = tmp_path / "n.jsonl"
    _mine(["--model", str(tiny_model_dir), "--data", str(beir_folder), "--output", str(out),
           "--no-false-negative-filter", "--num-negatives", "2"])
    report = json.loads((tmp_path / "n.report.json").read_text())
    assert report["config"]["max_score_ratio"] is None and report["config"]["margin"] is None
    assert report["counts"]["removed_false_negative"] == 0
    both = runner.invoke(app, ["mine", "--model", str(tiny_model_dir), "--data", str(beir_folder), "--output",
                               str(tmp_path / "y.jsonl"), "--no-false-negative-filter", "--margin", "0.1"])
    assert both.exit_code != 0


@pytest.mark.parametrize("search", ["faiss-flat", "faiss-hnsw"])
def test_faiss_candidates_give_the_exact_search_file(tmp_path, tiny_model_dir, beir_folder, search):
    args = ["--model", str(tiny_model_dir), "--data", str(beir_folder), "--num-negatives", "2",
            "--max-score-ratio", "1.0"]
    _mine([*args, "--output", str(tmp_path / "exact.jsonl")])
    _mine([*args, "--output", str(tmp_path / "faiss.jsonl"), "--search", search])
    assert (tmp_path / "faiss.jsonl").read_text() == (tmp_path / "exact.jsonl").read_text()
    report = json.loads((tmp_path / "faiss.report.json").read_text())
    assert report["config"]["search"] == search


def test_unknown_search_backend_is_a_clear_error(tmp_path, tiny_model_dir, beir_folder):
    result = runner.invoke(app, ["mine", "--model", str(tiny_model_dir), "--data", str(beir_folder),
                                 "--output", str(tmp_path / "x.jsonl"), "--search", "annoy"])
    assert result.exit_code != 0
    assert "faiss-hnsw" in str(result.exception)
