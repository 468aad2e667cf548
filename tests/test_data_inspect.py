"""``sbert-triplet data inspect``: kind, column mapping, counts and first rows."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sbert_triplet.cli import app
from sbert_triplet.data.inspect import inspect_data

runner = CliRunner()


def test_inspect_counts_what_would_be_dropped(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"anchor": "a", "positive": "b"}, {"anchor": "a", "positive": "b"}, {"anchor": "", "positive": "c"},
            {"anchor": "x", "positive": "x"}, {"anchor": "y", "positive": "z"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = inspect_data(path, rows=2)
    assert info["kind"] == "pairs" and info["columns"] == {"anchor": "anchor", "positive": "positive"}
    assert info["counts"] == {"rows_read": 5, "rows_valid": 2,
                              "would_drop": {"empty": 1, "positive_equals_anchor": 1, "duplicate_row": 1}}
    assert info["rows"] == [{"anchor": "a", "positive": "b"}, {"anchor": "y", "positive": "z"}]


def test_inspect_list_layout_json_cli(tmp_path):
    path = tmp_path / "flag.jsonl"
    path.write_text(json.dumps({"query": "q", "pos": ["p1", "p2"], "neg": ["n"]}) + "\n")
    result = runner.invoke(app, ["data", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["kind"] == "list" and info["counts"]["rows_valid"] == 2


@pytest.mark.real
def test_inspect_snli_text(shared_data):
    result = runner.invoke(app, ["data", "inspect", str(shared_data / "snli" / "snli_1.0_dev.jsonl.gz"), "--rows", "2"])
    assert result.exit_code == 0, result.output
    assert "kind:    nli" in result.output and "premise <- sentence1" in result.output
    assert "neutral 3235" in result.output and "no_label 158" in result.output and "triplets: 3226" in result.output
    assert result.output.count("--- row") == 2


@pytest.mark.real
def test_inspect_scifact_folder_json(shared_data):
    result = runner.invoke(app, ["data", "inspect", str(shared_data / "scifact"), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["kind"] == "beir" and info["counts"]["rows_read"] == 339 and len(info["rows"]) == 3


@pytest.mark.real
@pytest.mark.parametrize(
    ("name", "kind", "rows_read"),
    [
        ("mnli/multinli_1.0_dev_mismatched.csv", "nli", 10000),
        ("stsbenchmark/sts-test.csv", "sts", 1379),
        ("sick/SICK_train.txt", "sts", 4500),
        ("sts12-16/sts14.test.jsonl.gz", "sts", 3750),
        ("snli/snli_triplets_test.jsonl.gz", "triplets", 3223),
    ],
)
def test_inspect_kinds_of_shared_files(shared_data, name, kind, rows_read):
    info = inspect_data(shared_data / name)
    assert info["kind"] == kind and info["counts"]["rows_read"] == rows_read
