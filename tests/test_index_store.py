"""Encoding a corpus to an index folder: formats, manifest, resume after a crash or SIGKILL."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sbert_triplet.errors import ConfigError, DataSchemaError
from sbert_triplet.index import CorpusSpec, IndexConfig, IndexMismatchError, encode_to_disk, open_index
from sbert_triplet.index.corpus import iter_corpus
from sbert_triplet.index.store import load_chunks, read_manifest

ADJ = "red blue green big small old young happy sad fast slow good bad new".split()
NOUN = "cat dog man woman child boy girl house car park beach ball food water music book".split()
DOCS = [(f"doc{i:02d}", f"the {ADJ[i % len(ADJ)]} {NOUN[i % len(NOUN)]} " + "plays " * (i % 5)) for i in range(37)]
CFG = IndexConfig(chunk_size=8, batch_size=4, show_progress_bar=False)


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in DOCS))
    return path


def all_embeddings(folder: Path) -> np.ndarray:
    return np.concatenate([np.asarray(c) for c in load_chunks(folder, read_manifest(folder))])  # (N, D)


def folder_state(folder: Path) -> dict:
    manifest = read_manifest(folder)
    manifest.pop("stats")
    return {"manifest": manifest, "docs": (folder / "docs.jsonl").read_bytes(),
            "chunks": [(p.name, p.read_bytes()) for p in sorted((folder / "embeddings").iterdir())]}


def test_encode_to_disk_writes_manifest_docs_and_chunks(tmp_path, tiny_model, tiny_model_dir, corpus_file):
    report = encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), tmp_path / "idx", CFG, model_ref=str(tiny_model_dir))
    assert report["num_docs"] == 37 and report["num_chunks"] == 5 and report["chunks_encoded"] == [0, 1, 2, 3, 4]
    manifest = read_manifest(tmp_path / "idx")
    assert manifest["complete"] and manifest["dim"] == 32 and manifest["normalized"] is True
    assert manifest["score"] == "cosine" and manifest["similarity_fn_name"] == "cosine" and manifest["dtype"] == "float32"
    assert manifest["model"]["path"] == str(Path(tiny_model_dir).resolve()) and len(manifest["ids_sha256"]) == 64
    expected = tiny_model.encode([t for _, t in DOCS], convert_to_numpy=True)  # (N, D)
    np.testing.assert_allclose(all_embeddings(tmp_path / "idx"), expected, atol=1e-5)
    hits = open_index(tmp_path / "idx", tiny_model).search([DOCS[9][1]], k=3)[0]
    assert hits[0]["id"] == "doc09" and hits[0]["text"] == DOCS[9][1] and hits[0]["rank"] == 1


def test_float16_and_a_faiss_backend(tmp_path, tiny_model, corpus_file):
    cfg = IndexConfig(chunk_size=16, dtype="float16", backend="faiss-hnsw", show_progress_bar=False)
    encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), tmp_path / "idx", cfg)
    chunks = load_chunks(tmp_path / "idx", read_manifest(tmp_path / "idx"))
    assert all(c.dtype == np.float16 for c in chunks) and (tmp_path / "idx" / "faiss.index").is_file()
    indexed = open_index(tmp_path / "idx", tiny_model)
    assert indexed.index.backend == "faiss-hnsw"
    exact = open_index(tmp_path / "idx", tiny_model, backend="exact").search([DOCS[3][1]], k=5)[0]
    assert [h["id"] for h in indexed.search([DOCS[3][1]], k=5)[0]] == [h["id"] for h in exact]


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_redoes_no_finished_chunk(tmp_path, tiny_model, corpus_file):
    reference = tmp_path / "reference"
    encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), reference, CFG)

    def crash_after_chunk_2(i):
        if i == 2:
            raise Crash("killed")

    with pytest.raises(Crash):
        encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), tmp_path / "idx", CFG, on_chunk=crash_after_chunk_2)
    assert not read_manifest(tmp_path / "idx")["complete"]
    with pytest.raises(ConfigError, match="unfinished"):
        open_index(tmp_path / "idx", tiny_model)
    encoded_texts = []
    original = tiny_model.encode
    tiny_model.encode = lambda texts, **kw: (encoded_texts.extend(texts), original(texts, **kw))[1]
    report = encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), tmp_path / "idx", CFG)
    assert report["chunks_skipped"] == [0, 1, 2] and report["chunks_encoded"] == [3, 4]
    texts = [t for _, t in DOCS]
    assert sorted(encoded_texts[1:]) == sorted(texts[24:])  # [0] is the model probe
    assert folder_state(tmp_path / "idx") == folder_state(reference)


def test_resume_after_sigkill_of_a_real_process(tmp_path, tiny_model, tiny_model_dir, corpus_file):
    reference = tmp_path / "reference"
    encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), reference, CFG)
    out = tmp_path / "idx"
    script = (
        "import sys, time\n"
        "from sentence_transformers import SentenceTransformer\n"
        "from sbert_triplet.index import CorpusSpec, IndexConfig, encode_to_disk\n"
        "model = SentenceTransformer(sys.argv[1], device='cpu')\n"
        "cfg = IndexConfig(chunk_size=8, batch_size=4, show_progress_bar=False)\n"
        "encode_to_disk(model, CorpusSpec(sys.argv[2]), sys.argv[3], cfg, on_chunk=lambda i: time.sleep(30))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tiny_model_dir), str(corpus_file), str(out)],
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while not (out / "embeddings" / "00000.npy").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # during the sleep after chunk 0: chunks 1-4 not written
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not read_manifest(out)["complete"]
    report = encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), out, CFG)
    assert report["chunks_skipped"] == [0] and report["chunks_encoded"] == [1, 2, 3, 4]
    assert folder_state(out) == folder_state(reference)


def test_an_index_refuses_another_model_and_another_corpus(tmp_path, tiny_model, corpus_file):
    encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), tmp_path / "idx", CFG)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in tiny_model.parameters():  # a "fine-tuned" model: same architecture, new weights
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    with pytest.raises(IndexMismatchError, match="built with a different model"):
        open_index(tmp_path / "idx", tiny_model, model_ref="my-finetuned")
    with pytest.raises(IndexMismatchError, match="model"):
        encode_to_disk(tiny_model, CorpusSpec(str(corpus_file)), tmp_path / "idx", CFG)
    before = (tmp_path / "idx" / "docs.jsonl").read_bytes()
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "text": "a dog"}) + "\n")
    with pytest.raises(IndexMismatchError, match="ids_sha256"):
        encode_to_disk(tiny_model, CorpusSpec(str(other)), tmp_path / "idx", IndexConfig(chunk_size=8, show_progress_bar=False))
    assert (tmp_path / "idx" / "docs.jsonl").read_bytes() == before  # the old index is untouched


def test_corpus_formats_give_the_same_pairs(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    beir = tmp_path / "beir"
    beir.mkdir()
    with gzip.open(beir / "corpus.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"_id": "7", "title": "A title", "text": "body text"}) + "\n")
        handle.write(json.dumps({"_id": "8", "title": "", "text": "only body"}) + "\n")
    assert list(iter_corpus(CorpusSpec(str(beir)))) == [("7", "A title body text"), ("8", "only body")]
    rows = {"pid": ["a", "b"], "passage": ["first text", "second text"]}
    (tmp_path / "c.csv").write_text("pid,passage\na,first text\nb,second text\n")
    pq.write_table(pa.table(rows), tmp_path / "c.parquet")
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "saved"))
    for source in ("c.csv", "c.parquet", "saved"):
        spec = CorpusSpec(str(tmp_path / source), id_column="pid", text_column="passage")
        assert list(iter_corpus(spec)) == [("a", "first text"), ("b", "second text")], source


def test_bad_corpora_are_reported(tmp_path):
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": 1, "text": "x"}\n{"id": 1, "text": "y"}\n')
    with pytest.raises(DataSchemaError, match="duplicate document id '1'"):
        list(iter_corpus(CorpusSpec(str(dup))))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "body": "x"}\n')
    with pytest.raises(DataSchemaError, match="--text-column"):
        list(iter_corpus(CorpusSpec(str(bad))))
    (tmp_path / "c.csv").write_text("pid,passage\na,first\n")
    with pytest.raises(DataSchemaError, match="missing column"):
        list(iter_corpus(CorpusSpec(str(tmp_path / "c.csv"))))
    with pytest.raises(ConfigError, match="dtype"):
        IndexConfig(dtype="int8")
    with pytest.raises(ConfigError, match="not an index folder"):
        open_index(tmp_path)
