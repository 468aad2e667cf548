"""`sbert-triplet train --mine-negatives K`: one command from a BEIR folder to a model."""

import json

import pytest
from typer.testing import CliRunner

from sbert_triplet.cli import app
from sbert_triplet.config import build_train_config
from sbert_triplet.errors import ConfigError
from test_mining_cli import DOCS, QRELS, QUERIES, beir_folder  # noqa: F401  (fixture)

runner = CliRunner()


def _train(args):
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return result


def test_train_mine_negatives_from_a_beir_folder(tmp_path, tiny_model_dir, beir_folder):  # noqa: F811
    from sbert_triplet.data import load_triplets

    out = tmp_path / "run"
    _train(["--model", str(tiny_model_dir), "--train", str(beir_folder), "--output-dir", str(out),
            "--mine-negatives", "2", "--mine-max-score-ratio", "1.0", "--loss", "mnr", "--sampler", "random",
            "--batch-size", "2",
            "--max-steps", "2", "--no-eval-before"])
    mined = out / "mining" / "hard_negatives.jsonl"
    report = json.loads((out / "mining" / "hard_negatives.report.json").read_text())
    assert (out / "mining" / "hard_negatives.scores.png").stat().st_size > 0
    assert report["config"]["num_negatives"] == 2 and report["config"]["max_score_ratio"] == 1.0
    assert report["config"]["data"] == str(beir_folder)
    dataset, _ = load_triplets(mined)
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    positives_of = {QUERIES[q]: {DOCS[d] for qq, d in QRELS if qq == q} for q, _ in QRELS}
    for row in dataset:
        assert not {row["negative_1"], row["negative_2"]} & positives_of[row["anchor"]]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["rows"] == len(dataset) == report["counts"]["rows_written"]
    assert metrics["data"]["mining"]["counts"] == report["counts"]
    assert metrics["train"]["steps"] == 2
    config = json.loads((out / "train_config.json").read_text())
    assert config["mining"]["mine_negatives"] == 2 and config["data"]["train"] == str(mined)


def test_training_on_a_mined_file_records_its_report(tmp_path, tiny_model_dir, beir_folder):  # noqa: F811
    mined = tmp_path / "mined.jsonl"
    result = runner.invoke(app, ["mine", "--model", str(tiny_model_dir), "--data", str(beir_folder),
                                 "--output", str(mined), "--num-negatives", "1", "--no-false-negative-filter"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "run"
    _train(["--model", str(tiny_model_dir), "--train", str(mined), "--output-dir", str(out), "--batch-size", "2",
            "--sampler", "random",
            "--max-steps", "1", "--no-eval-before"])
    metrics = json.loads((out / "metrics.json").read_text())
    report = json.loads((tmp_path / "mined.report.json").read_text())
    assert metrics["data"]["mining"] == report
    assert metrics["data"]["mining"]["config"]["max_score_ratio"] is None


def test_mine_step_options_resolve_like_the_mine_command():
    base = {"train": "x", "output_dir": "o"}
    cfg = build_train_config({**base, "mine_negatives": 3})
    assert cfg.mining.score_rule == (0.95, None)
    assert build_train_config({**base, "mine_negatives": 1, "mine_margin": 0.05}).mining.score_rule == (None, 0.05)
    assert build_train_config({**base, "mine_negatives": 1, "mine_no_filter": True}).mining.score_rule == (None, None)


@pytest.mark.parametrize("values, message", [
    ({"mine_negatives": -1}, "mine_negatives"),
    ({"mine_negatives": 1, "mine_candidates": "faiss"}, "mine_candidates"),
    ({"mine_negatives": 1, "mine_margin": 0.1, "mine_max_score_ratio": 0.9}, "not both"),
    ({"mine_negatives": 1, "mine_no_filter": True, "mine_margin": 0.1}, "mine-no-filter"),
    ({"mine_negatives": 1, "loss": "batch-hard"}, "--loss mnr"),
])
def test_bad_mine_options_are_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        build_train_config({"train": "x", "output_dir": "o", **values})
