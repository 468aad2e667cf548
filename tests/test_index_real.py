"""The index path on the real MiniLM and SciFact (short: 600 abstracts, 100 queries)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sbert_triplet.index import CorpusSpec, IndexConfig, IndexMismatchError, encode_to_disk, open_index

pytestmark = pytest.mark.real


def test_scifact_subset_hnsw_matches_exact_and_refuses_another_model(tmp_path, shared_data, minilm_path, tiny_model):
    from sbert_triplet.data.beir import load_corpus, load_queries
    from sbert_triplet.index import encode_texts
    from sbert_triplet.models import load_model

    corpus = list(load_corpus(shared_data / "scifact").items())[:600]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in corpus))
    model = load_model(minilm_path, max_seq_length=128)
    cfg = IndexConfig(backend="faiss-hnsw", chunk_size=256, show_progress_bar=False)
    report = encode_to_disk(model, CorpusSpec(str(path)), tmp_path / "idx", cfg, model_ref=minilm_path)
    assert report["num_docs"] == 600 and report["dim"] == 384 and report["num_chunks"] == 3
    queries = list(load_queries(shared_data / "scifact").values())[:100]
    q_emb = encode_texts(model, queries)  # (100, 384)
    _, exact = open_index(tmp_path / "idx", model, backend="exact").index.search(q_emb, 10)
    _, hnsw = open_index(tmp_path / "idx", model).index.search(q_emb, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.tolist(), hnsw.tolist())])
    assert recall >= 0.99
    with pytest.raises(IndexMismatchError, match="dimension 32"):
        open_index(tmp_path / "idx", tiny_model, model_ref="tiny")
