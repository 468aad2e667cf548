"""Index backends behind build_index: exact (reference) and FAISS flat / HNSW / IVF."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbert_triplet.errors import ConfigError
from sbert_triplet.index import ExactIndex, FaissIndex, VectorIndex, build_index, exact_search
from sbert_triplet.similarity import cos_sim, dot_score

BACKENDS = ["exact", "faiss-flat", "faiss-hnsw", "faiss-ivf"]


def random_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)  # (n, d)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("score", ["cosine", "dot"])
def test_every_backend_equals_full_matrix_topk_on_a_small_corpus(backend, score):
    corpus, queries = random_vectors(300, 16), random_vectors(7, 16, seed=1)
    options = {"nlist": 4, "nprobe": 4} if backend == "faiss-ivf" else {}  # all cells: exact
    index = build_index(corpus, backend, score=score, **options)
    assert isinstance(index, VectorIndex) and len(index) == 300 and index.dim == 16
    scores, rows = index.search(queries, 10)  # (Q, 10) each
    full = (cos_sim if score == "cosine" else dot_score)(torch.from_numpy(queries), torch.from_numpy(corpus))  # (Q, N)
    expected = full.topk(10, dim=1)
    assert scores.shape == rows.shape == (7, 10) and rows.dtype == torch.long
    assert torch.equal(rows, expected.indices)
    assert torch.allclose(scores.float(), expected.values, atol=1e-5)


def test_chunked_exact_index_equals_one_matrix_and_exact_search():
    corpus, queries = random_vectors(103, 8), random_vectors(5, 8, seed=2)
    whole = build_index(corpus).search(queries, 20)
    chunked = ExactIndex([corpus[:10], corpus[10:50], corpus[50:]]).search(queries, 20)
    direct = exact_search(torch.from_numpy(queries), torch.from_numpy(corpus), 20, corpus_chunk_size=7)
    assert torch.equal(whole[1], chunked[1]) and torch.equal(whole[1], direct[1])
    assert torch.allclose(whole[0], chunked[0]) and torch.allclose(whole[0], direct[0])


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 100])
def test_exact_ties_break_by_row_ascending_at_the_cut_whatever_the_chunking(chunk):
    corpus = torch.tensor([[1.0, 0.0]] * 6 + [[2.0, 0.0], [0.0, 1.0]])  # rows 0-6 tie under cosine
    scores, rows = exact_search(torch.tensor([[1.0, 0.0]]), corpus, top_k=4, corpus_chunk_size=chunk)
    assert rows[0].tolist() == [0, 1, 2, 3]  # the smallest rows of the 7 tied ones
    _, rows_dot = exact_search(torch.tensor([[1.0, 0.0]]), corpus, top_k=4, score="dot", corpus_chunk_size=chunk)
    assert rows_dot[0].tolist() == [6, 0, 1, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_vector_ranks_last_for_every_query_and_backend(backend):
    corpus = random_vectors(120, 8)
    corpus[[5, 77]] = 0.0  # two all-zero documents
    queries = np.concatenate([random_vectors(4, 8, seed=3), np.zeros((1, 8), np.float32)])  # incl. a zero query
    options = {"nlist": 2, "nprobe": 2} if backend == "faiss-ivf" else {}
    scores, rows = build_index(corpus, backend, **options).search(queries, 120)  # (5, 120)
    assert not torch.isnan(scores).any()
    assert rows[:, -2:].tolist() == [[5, 77]] * 5  # last, by row ascending
    assert torch.isinf(scores[:, -2:]).all() and torch.isfinite(scores[:, :-2]).all()
    assert (scores[4, :-2] == 0).all()  # a zero query scores 0 against every other document


def test_hnsw_recall_against_exact():
    corpus, queries = random_vectors(3000, 32), random_vectors(50, 32, seed=4)
    _, exact_rows = build_index(corpus).search(queries, 10)
    _, hnsw_rows = build_index(corpus, "faiss-hnsw", hnsw_m=16, ef_construction=100, ef_search=128).search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_rows.tolist(), hnsw_rows.tolist())])
    assert recall >= 0.99


def test_ivf_nprobe_trades_recall(tmp_path):
    corpus, queries = random_vectors(2000, 16), random_vectors(30, 16, seed=5)
    _, exact_rows = build_index(corpus).search(queries, 10)
    index = build_index(corpus, "faiss-ivf", nlist=20, nprobe=1)
    recall = lambda rows: np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_rows.tolist(), rows.tolist())])  # noqa: E731
    low = recall(index.search(queries, 10)[1])
    index.set_search_params(nprobe=20)
    assert recall(index.search(queries, 10)[1]) == 1.0 > low


@pytest.mark.parametrize("backend", ["faiss-flat", "faiss-hnsw", "faiss-ivf"])
def test_faiss_save_and_load_give_the_same_results(tmp_path, backend):
    corpus, queries = random_vectors(500, 8), random_vectors(3, 8, seed=6)
    corpus[3] = 0.0
    options = {"nlist": 8} if backend == "faiss-ivf" else {}
    index = build_index(corpus, backend, **options)
    index.save(tmp_path / "x.index")
    loaded = FaissIndex.load(tmp_path / "x.index")
    assert loaded.params == index.params and len(loaded) == 500 and loaded.zero_rows.tolist() == [3]
    for a, b in zip(index.search(queries, 600), loaded.search(queries, 600)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_leaves_the_callers_queries_unchanged(backend):
    corpus, queries = random_vectors(200, 8), random_vectors(3, 8, seed=7)
    options = {"nlist": 2} if backend == "faiss-ivf" else {}
    index = build_index(corpus, backend, **options)
    copy = queries.copy()
    first = index.search(queries, 5)
    assert np.array_equal(queries, copy)
    assert all(torch.equal(a, b) for a, b in zip(first, index.search(queries, 5)))


def test_k_larger_than_corpus_and_float16_chunks():
    corpus = random_vectors(5, 4)
    assert build_index(corpus, "faiss-flat").search(corpus[:1], 50)[1].shape == (1, 5)
    half = ExactIndex([corpus[:2].astype(np.float16), corpus[2:].astype(np.float16)])
    scores, rows = half.search(corpus[:1], 3)
    assert rows[0, 0].item() == 0 and scores.dtype == torch.float32 and abs(scores[0, 0].item() - 1) < 1e-3


def test_bad_input_is_reported():
    corpus = random_vectors(10, 4)
    with pytest.raises(ConfigError, match="backend"):
        build_index(corpus, "annoy")
    with pytest.raises(ConfigError, match="no options"):
        build_index(corpus, "exact", ef_search=3)
    with pytest.raises(ConfigError, match="nlist"):
        build_index(corpus, "faiss-ivf", nlist=50)
    with pytest.raises(ConfigError, match="positive"):
        build_index(corpus, "faiss-hnsw", hnsw_m=0)
    with pytest.raises(ValueError, match="queries must be"):
        build_index(corpus).search(random_vectors(2, 5), 3)
    with pytest.raises(ValueError, match="top_k"):
        build_index(corpus, "faiss-flat").search(corpus, 0)
