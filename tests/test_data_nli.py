"""NLI pairs -> triplets: grouping per prompt, labels, counts, and the shipped triplet files."""

from __future__ import annotations

import gzip
import json

import pytest

from sbert_triplet.data.nli import load_nli_triplets
from sbert_triplet.errors import DataSchemaError


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_glue_numeric_labels_grouped_by_premise_in_first_seen_order(tmp_path):
    rows = [
        {"premise": "p1", "hypothesis": "e1", "label": 0},
        {"premise": "p2", "hypothesis": "c2", "label": 2},
        {"premise": "p1", "hypothesis": "n1", "label": 1},
        {"premise": "p1", "hypothesis": "c1", "label": 2},
        {"premise": "p1", "hypothesis": "e1b", "label": 0},
        {"premise": "p2", "hypothesis": "x", "label": -1},
        {"premise": "p2", "hypothesis": "e2", "label": 0},
    ]
    dataset, report = load_nli_triplets(_write_jsonl(tmp_path / "glue.jsonl", rows))
    assert dataset.column_names == ["anchor", "positive", "negative_1"]
    assert [tuple(r.values()) for r in dataset] == [("p1", "e1", "c1"), ("p1", "e1b", "c1"), ("p2", "e2", "c2")]
    assert report["rows_read"] == 7 and report["dropped_neutral"] == 1 and report["dropped_no_label"] == 1
    assert report["groups"] == 2 and report["groups_without_triplet"] == 0 and report["triplets"] == 3


def test_snli_key_uses_caption_and_pair_id_and_gold_label_not_suffix(tmp_path):
    rows = [
        {"captionID": "c#1", "pairID": "c#1r1e", "sentence1": "P", "sentence2": "A", "gold_label": "entailment"},
        {"captionID": "c#1", "pairID": "c#1r1c", "sentence1": "P", "sentence2": "B", "gold_label": "entailment"},
        {"captionID": "c#1", "pairID": "c#1r1n", "sentence1": "P", "sentence2": "C", "gold_label": "contradiction"},
        {"captionID": "c#1", "pairID": "c#1r2e", "sentence1": "P", "sentence2": "D", "gold_label": "entailment"},
        {"captionID": "c#1", "pairID": "c#1r2c", "sentence1": "P", "sentence2": "E", "gold_label": "-"},
    ]
    dataset, report = load_nli_triplets(_write_jsonl(tmp_path / "snli.jsonl", rows))
    assert [tuple(r.values()) for r in dataset] == [("P", "A", "C"), ("P", "B", "C")]
    assert report["groups"] == 2 and report["groups_without_triplet"] == 1 and report["dropped_no_label"] == 1


def test_unknown_label_names_file_row_and_column(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"premise": "p", "hypothesis": "h", "label": "maybe"}])
    with pytest.raises(DataSchemaError) as info:
        load_nli_triplets(path)
    assert (info.value.source, info.value.row, info.value.column) == (str(path), 0, "label")


def test_strict_mode_rejects_rows_without_gold_label(tmp_path):
    rows = [{"premise": "p", "hypothesis": "h", "label": 0}, {"premise": "p", "hypothesis": "g", "label": "-"}]
    with pytest.raises(DataSchemaError, match="no gold label") as info:
        load_nli_triplets(_write_jsonl(tmp_path / "s.jsonl", rows), drop_report=False)
    assert info.value.row == 1


def test_empty_hypothesis_is_an_error_or_dropped(tmp_path):
    rows = [{"premise": "p", "hypothesis": "e", "label": 0}, {"premise": "p", "hypothesis": " ", "label": 2},
            {"premise": "p", "hypothesis": "c", "label": 2}]
    path = _write_jsonl(tmp_path / "e.jsonl", rows)
    with pytest.raises(DataSchemaError) as info:
        load_nli_triplets(path)
    assert (info.value.row, info.value.column) == (1, "hypothesis")
    dataset, report = load_nli_triplets(path, drop_invalid=True)
    assert len(dataset) == 1 and report["dropped_invalid"] == 1


def _reference(path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [(r["anchor"], r["positive"], r["negative"]) for r in map(json.loads, handle)]


@pytest.mark.real
@pytest.mark.parametrize(
    ("original", "derived", "count"),
    [
        ("snli/snli_1.0_dev.jsonl.gz", "snli/snli_triplets_dev.jsonl.gz", 3226),
        ("snli/snli_1.0_test.jsonl.gz", "snli/snli_triplets_test.jsonl.gz", 3223),
        ("mnli/multinli_1.0_dev_matched.csv", "mnli/mnli_triplets_dev_matched.jsonl.gz", 3313),
    ],
)
def test_shipped_triplets_are_reproduced_row_by_row(shared_data, original, derived, count):
    dataset, report = load_nli_triplets(shared_data / original)
    got = list(zip(dataset["anchor"], dataset["positive"], dataset["negative_1"]))
    expected = _reference(shared_data / derived)
    assert len(got) == len(expected) == count == report["triplets"]
    for row, (mine, theirs) in enumerate(zip(got, expected)):
        assert mine == theirs, f"row {row} differs"
    assert report["rows_read"] == 10000
