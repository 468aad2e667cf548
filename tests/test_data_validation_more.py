"""Row checks (positive == anchor, duplicates), the FlagEmbedding list layout, name aliases, STS row counts."""

from __future__ import annotations

import json

import pytest

from sbert_triplet.data import load_sts, load_training_data, load_triplets
from sbert_triplet.errors import DataSchemaError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_positive_equal_to_anchor_is_an_error_naming_file_row_column(tmp_path):
    path = _jsonl(tmp_path / "t.jsonl", [{"anchor": "a", "positive": "b"}, {"anchor": "c ", "positive": " c"}])
    with pytest.raises(DataSchemaError, match="positive equals the anchor") as info:
        load_training_data(path)
    assert (info.value.source, info.value.row, info.value.column) == (path, 1, "positive")
    assert "--drop-invalid" in str(info.value)


def test_duplicate_row_is_an_error_and_dropped_with_drop_invalid(tmp_path):
    rows = [{"anchor": "a", "positive": "b", "negative": "n"}, {"anchor": "x", "positive": "y", "negative": "z"},
            {"anchor": "a", "positive": "b", "negative": "n"}, {"anchor": "q", "positive": "q"}]
    path = _jsonl(tmp_path / "d.jsonl", rows[:3] + [{"anchor": "q", "positive": "q", "negative": "r"}])
    with pytest.raises(DataSchemaError, match="duplicate of row 0") as info:
        load_training_data(path)
    assert (info.value.row, info.value.column) == (2, "anchor")
    dataset, report = load_training_data(path, drop_invalid=True)
    assert dataset["anchor"] == ["a", "x"]
    assert report["dropped_by_reason"]["duplicate_row"] == 1
    assert report["dropped_by_reason"]["positive_equals_anchor"] == 1
    assert report["rows_kept"] == 2 and report["rows_dropped"] == 2


def test_row_numbers_stay_file_rows_after_text_drops(tmp_path):
    rows = [{"anchor": "", "positive": "b"}, {"anchor": "a", "positive": "b"}, {"anchor": "a", "positive": "b"}]
    with pytest.raises(DataSchemaError) as info:
        load_triplets(_jsonl(tmp_path / "r.jsonl", rows), drop_invalid=False, check_rows=True)
    assert info.value.row == 0  # the empty text comes first
    path = _jsonl(tmp_path / "r2.jsonl", rows[1:] + [{"anchor": " ", "positive": "c"}])
    with pytest.raises(DataSchemaError) as info:
        load_triplets(path, check_rows=True)
    assert info.value.row == 2  # text errors are reported before row checks


def test_row_checks_are_off_for_plain_load_triplets(tmp_path):
    path = _jsonl(tmp_path / "e.jsonl", [{"anchor": "a", "positive": "a"}, {"anchor": "a", "positive": "a"}])
    dataset, _ = load_triplets(path)
    assert len(dataset) == 2


def test_question_column_mapped_to_anchor(tmp_path):
    path = _jsonl(tmp_path / "q.jsonl", [{"question": "why?", "answer": "because", "id": 1}])
    dataset, report = load_training_data(path, columns="anchor=question,positive=answer")
    assert dataset.column_names == ["anchor", "positive"] and dataset[0] == {"anchor": "why?", "positive": "because"}
    assert report["columns"] == {"anchor": "question", "positive": "answer"}


def test_list_of_three_positives_expands_to_three_rows(tmp_path):
    path = _jsonl(tmp_path / "flag.jsonl", [{"query": "q", "pos": ["p1", "p2", "p3"], "neg": ["n1", "n2"]}])
    dataset, report = load_training_data(path)
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert dataset["positive"] == ["p1", "p2", "p3"] and dataset["anchor"] == ["q"] * 3
    assert dataset["negative_2"] == ["n2"] * 3
    assert report["kind"] == "list" and report["columns"]["anchor"] == "query" and report["num_negatives"] == 2


def test_negative_lists_truncate_to_the_minimum_and_count(tmp_path):
    rows = [{"query": "q1", "pos": ["p1"], "neg": ["a", "b", "c"]}, {"query": "q2", "pos": ["p2"], "neg": ["d", "e"]}]
    dataset, report = load_training_data(_jsonl(tmp_path / "t.jsonl", rows))
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert dataset[0]["negative_2"] == "b" and report["rows_negatives_truncated"] == 1


def test_bad_text_inside_a_list_names_the_file_row_and_column(tmp_path):
    rows = [{"query": "q1", "pos": ["p1"], "neg": ["a"]}, {"query": "q2", "pos": ["p2", ""], "neg": ["b"]}]
    path = _jsonl(tmp_path / "b.jsonl", rows)
    with pytest.raises(DataSchemaError) as info:
        load_training_data(path)
    assert (info.value.source, info.value.row, info.value.column) == (path, 1, "pos")


def test_empty_list_of_positives(tmp_path):
    rows = [{"query": "q1", "pos": ["p1"]}, {"query": "q2", "pos": []}]
    path = _jsonl(tmp_path / "e.jsonl", rows)
    with pytest.raises(DataSchemaError, match="empty list of positives") as info:
        load_training_data(path)
    assert info.value.row == 1
    dataset, report = load_training_data(path, drop_invalid=True)
    assert len(dataset) == 1 and report["rows_dropped_empty_list"] == 1


@pytest.mark.real
@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("stsbenchmark/sts-train.csv", 5749), ("stsbenchmark/sts-dev.csv", 1500), ("stsbenchmark/sts-test.csv", 1379),
        ("sick/SICK_train.txt", 4500), ("sick/SICK_trial.txt", 500), ("sick/SICK_test_annotated.txt", 4927),
    ],
)
def test_sts_and_sick_row_counts(shared_data, name, rows):
    assert len(load_sts(shared_data / name)) == rows


@pytest.mark.real
def test_nli_file_trains_as_triplets(shared_data):
    with pytest.raises(DataSchemaError, match="duplicate|positive equals"):
        load_training_data(shared_data / "snli" / "snli_1.0_dev.jsonl.gz")
    dataset, report = load_training_data(shared_data / "snli" / "snli_1.0_dev.jsonl.gz", drop_invalid=True)
    assert report["kind"] == "nli" and report["triplets"] == 3226 and len(dataset) == 3222
