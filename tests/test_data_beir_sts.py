"""BEIR folders (corpus, queries, qrels) and STS / SICK scored pairs."""

from __future__ import annotations

import gzip
import json

import pytest

from sbert_triplet.data import (
    RetrievalSet,
    ScoredPairs,
    beir_training_pairs,
    is_beir_folder,
    load_retrieval_set,
    load_sts,
    load_training_data,
)
from sbert_triplet.data.beir import load_corpus, load_qrels, load_queries
from sbert_triplet.errors import DataSchemaError

CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "Cats sleep a lot.", "metadata": {}},
    {"_id": 2, "title": "", "text": "Dogs like to run."},
    {"_id": "d3", "title": "Fish", "text": "Fish swim."},
]
QUERIES = [
    {"_id": "q1", "text": "do cats sleep?"},
    {"_id": 2, "text": "what do dogs like?"},
    {"_id": "q3", "text": "an unjudged query"},
]
QRELS = {
    "train": "query-id\tcorpus-id\tscore\nq1\td1\t1\n2\t2\t1\nq1\td3\t2\n",
    "test": "query-id\tcorpus-id\tscore\r\n2\t2\t1\r\nq1\td3\t0\r\n",
}


def make_beir(folder, qrels=QRELS):
    (folder / "qrels").mkdir(parents=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(doc) + "\n" for doc in CORPUS)
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    for split, text in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_bytes(text.encode())
    return folder


@pytest.fixture
def beir_dir(tmp_path):
    return make_beir(tmp_path / "toy")


def test_is_beir_folder(beir_dir, tmp_path):
    assert is_beir_folder(beir_dir) and is_beir_folder(str(beir_dir))
    assert not is_beir_folder(tmp_path) and not is_beir_folder(beir_dir / "queries.jsonl")


def test_corpus_queries_and_qrels(beir_dir):
    assert load_corpus(beir_dir) == {"d1": "Cats Cats sleep a lot.", "2": "Dogs like to run.", "d3": "Fish Fish swim."}
    assert list(load_queries(beir_dir)) == ["q1", "2", "q3"]  # ids are str
    assert load_qrels(beir_dir, "train") == {"q1": {"d1": 1, "d3": 2}, "2": {"2": 1}}
    assert load_qrels(beir_dir, "test") == {"2": {"2": 1}}  # score 0 is not relevant; CRLF ok


def test_training_pairs_in_qrels_order(beir_dir):
    pairs = beir_training_pairs(beir_dir)
    assert pairs.column_names == ["anchor", "positive"]
    assert pairs["anchor"][:] == ["do cats sleep?", "what do dogs like?", "do cats sleep?"]
    assert pairs["positive"][:] == ["Cats Cats sleep a lot.", "Dogs like to run.", "Fish Fish swim."]
    dataset, report = load_training_data(str(beir_dir))
    assert dataset[:] == pairs[:] and report["kind"] == "beir" and report["rows_kept"] == 3


def test_retrieval_set(beir_dir):
    ir = load_retrieval_set(beir_dir, "test")
    assert isinstance(ir, RetrievalSet) and ir.name == "toy-test"
    assert ir.queries == {"2": "what do dogs like?"}
    assert ir.relevant == {"2": {"2": 1}} and len(ir.corpus) == 3 and ir.corpus_ids == ["d1", "2", "d3"]


def test_missing_split_lists_available(beir_dir):
    with pytest.raises(DataSchemaError, match=r"split 'dev'.*available splits: \['test', 'train'\]"):
        load_qrels(beir_dir, "dev")


@pytest.mark.parametrize(
    ("line", "expected"),
    [("q1\td1", "expected 'query-id<TAB>corpus-id<TAB>score'"), ("q1\td1\thigh", "score must be an integer")],
)
def test_bad_qrels_line_names_file_and_line(tmp_path, line, expected):
    folder = make_beir(tmp_path / "bad", {"train": f"query-id\tcorpus-id\tscore\nq1\td1\t1\n{line}\n"})
    with pytest.raises(DataSchemaError) as info:
        load_qrels(folder, "train")
    assert "train.tsv" in str(info.value) and "line 3" in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize(("line", "bad_id"), [("nope\td1\t1", "query id 'nope'"), ("q1\tnodoc\t1", "corpus id 'nodoc'")])
def test_unknown_qrel_id_is_an_error(tmp_path, line, bad_id):
    folder = make_beir(tmp_path / "bad", {"train": f"query-id\tcorpus-id\tscore\nq1\td1\t1\n{line}\n"})
    with pytest.raises(DataSchemaError, match=f"train.tsv: line 3: {bad_id}"):
        beir_training_pairs(folder, "train")


# --- STS ------------------------------------------------------------------------------


STSB_LINES = [
    'main-captions\tMSRvid\t2012test\t0001\t5.000\tA man with a "hard" hat.\tA man wearing a hard hat.',
    'main-news\theadlines\t2013\t0002\t1.250\t"Quoted start\tPlain end.\tsource-a\tlicence-b',
]


def test_stsb_csv_with_quotes_and_extra_fields(tmp_path):
    path = tmp_path / "sts-dev.csv"
    path.write_text("\n".join(STSB_LINES) + "\n")
    pairs = load_sts(path)
    assert isinstance(pairs, ScoredPairs) and pairs.name == "sts-dev" and len(pairs) == 2
    assert pairs.sentence1 == ['A man with a "hard" hat.', '"Quoted start']
    assert pairs.sentence2 == ["A man wearing a hard hat.", "Plain end."]
    assert pairs.scores == [5.0, 1.25]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [("genre\tfile\t2012\t0003\t4.0\tonly one sentence", "at least 7"), ("g\tf\t2012\t3\tfive\ts1\ts2", "'five'")],
)
def test_stsb_bad_line_names_file_and_line(tmp_path, bad, expected):
    path = tmp_path / "sts-bad.csv"
    path.write_text("\n".join([*STSB_LINES, bad]) + "\n")
    with pytest.raises(DataSchemaError, match=f"sts-bad.csv: line 3: .*{expected}"):
        load_sts(path)


def test_sts_jsonl_gz(tmp_path):
    path = tmp_path / "sts99.test.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps({"subset": "x", "sentence1": "a b", "sentence2": "c d", "score": 3.5}) + "\n")
        handle.write(json.dumps({"sentence1": "e", "sentence2": "f", "score": 0}) + "\n")
    pairs = load_sts(path)
    assert pairs.name == "sts99.test" and pairs.sentence2 == ["c d", "f"] and pairs.scores == [3.5, 0.0]


def test_sick_txt_with_crlf(tmp_path):
    path = tmp_path / "SICK_mini.txt"
    text = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n1\tA b\tC d\t4.5\tNEUTRAL\r\n"
    path.write_bytes(text.encode())
    pairs = load_sts(path)
    assert (pairs.name, pairs.sentence1, pairs.sentence2, pairs.scores) == ("SICK_mini", ["A b"], ["C d"], [4.5])
    path.write_bytes((text + "2\tE f\n").encode())
    with pytest.raises(DataSchemaError, match="SICK_mini.txt: line 3"):
        load_sts(path)


def test_sts_unsupported_and_missing(tmp_path):
    with pytest.raises(DataSchemaError, match="unsupported"):
        load_sts(tmp_path / "x.parquet")
    with pytest.raises(DataSchemaError, match="file not found"):
        load_sts(tmp_path / "x.csv")


# --- real data ------------------------------------------------------------------------


@pytest.mark.real
def test_real_scifact(shared_data):
    folder = shared_data / "scifact"
    pairs = beir_training_pairs(folder, "train")
    assert len(pairs) == 919 and len(load_qrels(folder, "train")) == 809
    queries, corpus = load_queries(folder), load_corpus(folder)
    assert pairs[0] == {"anchor": queries["0"], "positive": corpus["31715818"]}  # first train qrel
    ir = load_retrieval_set(folder, "test")
    assert (len(ir.queries), len(ir.corpus)) == (300, 5183)
    assert sum(len(docs) for docs in ir.relevant.values()) == 339 and ir.name == "scifact-test"


@pytest.mark.real
@pytest.mark.parametrize(
    ("relative", "rows"),
    [("stsbenchmark/sts-dev.csv", 1500), ("sick/SICK_trial.txt", 500), ("sts12-16/sts16.test.jsonl.gz", 1186)],
)
def test_real_sts_files(shared_data, relative, rows):
    pairs = load_sts(shared_data / relative)
    assert len(pairs) == rows
    assert all(0.0 <= s <= 5.0 for s in pairs.scores)
