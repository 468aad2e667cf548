"""Tables -> canonical (anchor, positive, negative_1..k) schema: formats, names, validation."""

from __future__ import annotations

import csv
import gzip
import json
import math

import pytest

from sbert_triplet.data import (
    load_table,
    load_training_data,
    load_triplets,
    parse_column_mapping,
    resolve_columns,
    validate_texts,
)
from sbert_triplet.errors import ConfigError, DataSchemaError

ROWS = [  # deliberately not in canonical column order
    {"negative": "a cat sleeps", "anchor": "a dog runs", "positive": "a dog is running", "id": "1"},
    {"negative": "it is raining", "anchor": "sunny day", "positive": "the sun shines", "id": "2"},
    {"negative": "no music", "anchor": "man plays guitar", "positive": "someone plays music", "id": "3"},
]


def write_jsonl(path, rows, raw_lines=None):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        for line in raw_lines or []:
            handle.write(line + "\n")
    return path


def write_delimited(path, rows, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def assert_canonical_triplets(dataset, rows=ROWS):
    assert dataset.column_names == ["anchor", "positive", "negative_1"]
    assert all(f.dtype == "string" for f in dataset.features.values())
    assert dataset["anchor"][:] == [r["anchor"] for r in rows]
    assert dataset["positive"][:] == [r["positive"] for r in rows]
    assert dataset["negative_1"][:] == [r["negative"] for r in rows]


# --- columns by name ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_columns_are_chosen_by_name_not_position(tmp_path, suffix):
    path = tmp_path / f"train.{suffix}"
    write_jsonl(path, ROWS) if suffix == "jsonl" else write_delimited(path, ROWS)
    dataset, report = load_triplets(str(path))
    assert_canonical_triplets(dataset)
    assert "id" not in dataset.column_names
    assert report["columns"] == {"anchor": "anchor", "positive": "positive", "negative_1": "negative"}
    assert report["kind"] == "triplets" and report["num_negatives"] == 1
    assert report["rows_read"] == report["rows_kept"] == 3 and report["rows_dropped"] == 0


@pytest.mark.parametrize("spec", ["anchor=question,positive=answer", {"anchor": "question", "positive": "answer"}])
def test_column_mapping(tmp_path, spec):
    rows = [{"label": "x", "answer": "paris is the capital", "question": "capital of france?"}]
    dataset, report = load_triplets(str(write_jsonl(tmp_path / "qa.jsonl", rows)), columns=spec)
    assert dataset.column_names == ["anchor", "positive"]
    assert dataset[0] == {"anchor": "capital of france?", "positive": "paris is the capital"}
    assert report["kind"] == "pairs" and report["columns"] == {"anchor": "question", "positive": "answer"}


def test_numbered_negatives_sorted_numerically(tmp_path):
    row = {"negative_3": "n3", "anchor": "a", "negative_1": "n1", "positive": "p", "negative_2": "n2", "id": 7}
    dataset, report = load_triplets(str(write_jsonl(tmp_path / "t.jsonl", [row])))
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    assert dataset[0] == {"anchor": "a", "positive": "p", "negative_1": "n1", "negative_2": "n2", "negative_3": "n3"}
    assert report["num_negatives"] == 3


def test_negative_mapping_renamed_to_negative_1(tmp_path):
    rows = [{"q": "a", "p": "b", "hard": "c"}]
    dataset, _ = load_triplets(str(write_jsonl(tmp_path / "t.jsonl", rows)), columns="anchor=q,positive=p,negative=hard")
    assert dataset[0] == {"anchor": "a", "positive": "b", "negative_1": "c"}


def test_non_contiguous_negatives_is_an_error():
    with pytest.raises(DataSchemaError, match="negative_3"):
        resolve_columns(["anchor", "positive", "negative_1", "negative_3"], None, "f.jsonl")


def test_negative_and_negative_1_together_is_ambiguous():
    with pytest.raises(DataSchemaError, match="ambiguous"):
        resolve_columns(["anchor", "positive", "negative", "negative_1"], None, "f.jsonl")


def test_missing_column_lists_columns_and_fix(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a", "id": "1"}])
    with pytest.raises(DataSchemaError) as info:
        load_triplets(str(path))
    message = str(info.value)
    assert "qa.jsonl" in message and "'anchor'" in message
    assert "['question', 'answer', 'id']" in message
    assert "--columns anchor=<name>,positive=<name>" in message


def test_mapping_to_unknown_column_is_an_error():
    with pytest.raises(DataSchemaError, match="'question'.*columns found: \\['query', 'answer'\\]"):
        resolve_columns(["query", "answer"], "anchor=question,positive=answer", "f.csv")


def test_parse_column_mapping():
    assert parse_column_mapping(None) == {} and parse_column_mapping("") == {}
    assert parse_column_mapping(" positive = b , anchor=a,negative_2=d,negative_1=c") == {
        "anchor": "a", "positive": "b", "negative_1": "c", "negative_2": "d",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="unknown key 'query'.*anchor, positive, negative"):
        parse_column_mapping("query=q,positive=p")
    with pytest.raises(ConfigError, match="malformed item 'anchor'.*anchor=<column>"):
        parse_column_mapping("anchor,positive=p")
    with pytest.raises(ConfigError, match="two roles"):
        parse_column_mapping("anchor=text,positive=text")
    with pytest.raises(ConfigError, match="not both"):
        parse_column_mapping("anchor=a,positive=p,negative=n,negative_1=m")
    with pytest.raises(ConfigError, match="without gaps"):
        parse_column_mapping("anchor=a,positive=p,negative_2=m")


# --- invalid texts --------------------------------------------------------------------


CSV_HEADER = "id,anchor,positive"
INVALID_CASES = {
    "csv-empty": ("csv", ['1,a,b', '2,c,d', '3,e,'], "empty or whitespace-only"),
    "csv-whitespace": ("csv", ['1,a,b', '2,c,d', '3,e,"   "'], "empty or whitespace-only"),
    "json-empty": ("jsonl", ['{"anchor":"a","positive":"b"}', '{"anchor":"c","positive":"d"}', '{"anchor":"e","positive":""}'], "empty"),
    "json-whitespace": ("jsonl", ['{"anchor":"a","positive":"b"}', '{"anchor":"c","positive":"d"}', '{"anchor":"e","positive":" \\t "}'], "whitespace-only"),
    "json-null": ("jsonl", ['{"anchor":"a","positive":"b"}', '{"anchor":"c","positive":"d"}', '{"anchor":"e","positive":null}'], "missing value"),
    "json-absent": ("jsonl", ['{"anchor":"a","positive":"b"}', '{"anchor":"c","positive":"d"}', '{"anchor":"e"}'], "missing value"),
    "json-nan": ("jsonl", ['{"anchor":"a","positive":"b"}', '{"anchor":"c","positive":"d"}', '{"anchor":"e","positive":NaN}'], "NaN; expected"),
    "json-int": ("jsonl", ['{"anchor":"a","positive":"b"}', '{"anchor":"c","positive":"d"}', '{"anchor":"e","positive":5}'], "expected a string, got int 5"),
    "json-list": ("jsonl", ['{"anchor":"a","positive":"b"}', '{"anchor":"c","positive":"d"}', '{"anchor":"e","positive":["x"]}'], "got list"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(INVALID_CASES))
def test_invalid_text_names_file_row_and_column(tmp_path, case):
    suffix, lines, found = INVALID_CASES[case]
    path = tmp_path / f"bad_{case}.{suffix}"
    path.write_text("\n".join(([CSV_HEADER] if suffix == "csv" else []) + lines) + "\n", encoding="utf-8")
    with pytest.raises(DataSchemaError) as info:
        load_triplets(str(path))
    error, message = info.value, str(info.value)
    assert (error.source, error.row, error.column) == (str(path), 2, "positive")
    assert path.name in message and "row 2" in message and "'positive'" in message
    assert found in message and "--drop-invalid" in message


def test_drop_invalid_drops_and_counts_by_reason(tmp_path):
    lines = [
        '{"anchor":"a0","positive":"p0"}',
        '{"anchor":"","positive":"p1"}',
        '{"anchor":"a2","positive":NaN}',
        '{"anchor":"a3","positive":"p3"}',
        '{"anchor":7,"positive":"p4"}',
        '{"anchor":"a5","positive":null}',
        '{"anchor":"  ","positive":null}',
        '{"anchor":"a7","positive":"p7"}',
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    dataset, report = load_triplets(str(path), drop_invalid=True)
    assert dataset["anchor"][:] == ["a0", "a3", "a7"] and dataset["positive"][:] == ["p0", "p3", "p7"]
    assert all(f.dtype == "string" for f in dataset.features.values())
    assert report["rows_read"] == 8 and report["rows_kept"] == 3 and report["rows_dropped"] == 5
    assert report["dropped_by_reason"] == {"empty": 2, "missing": 1, "nan": 1, "not_string": 1}
    assert report["first_dropped_rows"] == [1, 2, 4, 5, 6]


def test_drop_invalid_csv_empty_cells(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("anchor,positive\na,b\n,d\ne, \ng,h\n")
    dataset, report = load_triplets(str(path), drop_invalid=True)
    assert dataset["anchor"][:] == ["a", "g"]
    assert report["dropped_by_reason"]["empty"] == 2 and report["first_dropped_rows"] == [1, 2]


def test_all_rows_invalid_is_an_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("anchor,positive\n,b\n")
    with pytest.raises(DataSchemaError, match="all 1 rows were invalid"):
        load_triplets(str(path), drop_invalid=True)


def test_validate_texts_on_100k_rows_drops_only_the_bad_one():
    import datasets

    n = 100_000
    data = {"anchor": [f"query {i}" for i in range(n)], "positive": [f"doc {i} text" for i in range(n)]}
    data["positive"][n - 1] = " "
    dataset = datasets.Dataset.from_dict(data)
    kept, report = validate_texts(dataset, ["anchor", "positive"], "mem", drop_invalid=True)
    assert len(kept) == n - 1 and report["first_dropped_rows"] == [n - 1]


def test_in_memory_dataset_and_float_nan():
    import datasets

    dataset = datasets.Dataset.from_dict({"positive": ["p", "q"], "anchor": ["a", "b"], "negative": [1.0, math.nan]})
    with pytest.raises(DataSchemaError, match="row 0, column 'negative': expected a string, got float 1.0"):
        load_triplets(dataset)
    good = datasets.DatasetDict({"dev": datasets.Dataset.from_dict({"positive": ["p"], "anchor": ["a"]})})
    out, report = load_triplets(good, split="dev")
    assert out[0] == {"anchor": "a", "positive": "p"} and report["source"] == "<in-memory dataset>"


# --- formats --------------------------------------------------------------------------


def test_jsonl_gz_and_json_array(tmp_path):
    dataset, _ = load_triplets(str(write_jsonl(tmp_path / "t.jsonl.gz", ROWS)))
    assert_canonical_triplets(dataset)
    (tmp_path / "t.json").write_text(json.dumps({"data": ROWS}))
    assert_canonical_triplets(load_triplets(str(tmp_path / "t.json"))[0])
    (tmp_path / "u.json").write_text(json.dumps(ROWS))
    assert_canonical_triplets(load_triplets(str(tmp_path / "u.json"))[0])


def test_tsv_keeps_text_as_strings(tmp_path):
    rows = [dict(r, anchor=r["anchor"] + ' "quoted", 1') for r in ROWS]
    rows[0]["positive"] = "1"
    path = write_delimited(tmp_path / "t.tsv", rows, delimiter="\t")
    table = load_table(str(path))
    assert table["id"][:] == ["1", "2", "3"]  # no type inference
    dataset, _ = load_triplets(str(path))
    assert_canonical_triplets(dataset, rows)


def test_csv_keeps_numbers_as_strings(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("anchor,positive,id\n007,1.50,1\n")
    assert load_table(str(path))[0] == {"anchor": "007", "positive": "1.50", "id": "1"}


def test_parquet_with_large_string(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array([r[k] for r in ROWS], type=pa.large_string()) for k in ROWS[0]})
    pq.write_table(table, tmp_path / "t.parquet")
    dataset, _ = load_triplets(str(tmp_path / "t.parquet"))
    assert_canonical_triplets(dataset)


def test_save_to_disk_dataset_and_datasetdict(tmp_path):
    import datasets

    single = datasets.Dataset.from_list(ROWS)
    single.save_to_disk(str(tmp_path / "single"))
    assert_canonical_triplets(load_triplets(str(tmp_path / "single"))[0])
    other = [dict(r, anchor=r["anchor"].upper()) for r in ROWS]
    splits = datasets.DatasetDict({"train": single, "validation": datasets.Dataset.from_list(other)})
    splits.save_to_disk(str(tmp_path / "dict"))
    assert_canonical_triplets(load_triplets(str(tmp_path / "dict"))[0])
    assert_canonical_triplets(load_triplets(str(tmp_path / "dict"), split="validation")[0], other)
    with pytest.raises(DataSchemaError, match=r"split 'test' not found; available splits: \['train', 'validation'\]"):
        load_table(str(tmp_path / "dict"), split="test")


def test_missing_file_unknown_suffix_and_offline_hub(tmp_path):
    with pytest.raises(DataSchemaError, match="nope.jsonl: file not found"):
        load_table(str(tmp_path / "nope.jsonl"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataSchemaError, match="unsupported file type"):
        load_table(str(tmp_path / "notes.txt"))
    with pytest.raises(DataSchemaError, match="does not exist locally.*Hub could not be reached"):
        load_table("no-such-user/no-such-dataset-xyz")


def test_invalid_json_line_is_named(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", ROWS[:1], raw_lines=['{"anchor": "a",'])
    with pytest.raises(DataSchemaError, match="t.jsonl: line 2: invalid JSON"):
        load_table(str(path))


def test_load_training_data_on_a_table(tmp_path):
    dataset, report = load_training_data(str(write_jsonl(tmp_path / "t.jsonl", ROWS)))
    assert_canonical_triplets(dataset)
    assert report["kind"] == "triplets"


@pytest.mark.real
def test_real_snli_triplets(shared_data):
    dataset, report = load_triplets(str(shared_data / "snli" / "snli_triplets_test.jsonl.gz"))
    assert len(dataset) == 3223 and report["num_negatives"] == 1
    assert dataset.column_names == ["anchor", "positive", "negative_1"]
