"""Exact search and the STS / triplet / retrieval evaluators."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from sbert_triplet.data.types import RetrievalSet, ScoredPairs
from sbert_triplet.errors import DataSchemaError
from sbert_triplet.evaluation import (
    RetrievalEvaluator,
    STSEvaluator,
    TripletEvaluator,
    evaluate_retrieval,
    evaluate_sts,
    evaluate_triplets,
)
from sbert_triplet.index import exact_search
from sbert_triplet.similarity import cos_sim, dot_score


class FakeEncoder:
    """Returns fixed vectors from a dict; records every call to ``encode``."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=32, convert_to_tensor=False, show_progress_bar=None):
        assert convert_to_tensor is True
        self.calls.append(list(texts))
        return torch.tensor([self.vectors[t] for t in texts], dtype=torch.float32)


# ---- exact search -----------------------------------------------------------------------


@pytest.mark.parametrize("score", ["cosine", "dot"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 10, 37, 50_000])
def test_exact_search_equals_full_matrix_topk(score, chunk):
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(5, 8, generator=gen, dtype=torch.float64)  # (Q, D)
    corpus = torch.randn(37, 8, generator=gen, dtype=torch.float64)  # (N, D)
    full = cos_sim(queries, corpus) if score == "cosine" else dot_score(queries, corpus)  # (Q, N)
    expected = full.topk(10, dim=1)
    scores, indices = exact_search(queries, corpus, top_k=10, score=score, corpus_chunk_size=chunk)
    assert scores.shape == indices.shape == (5, 10)
    assert indices.dtype == torch.long
    assert torch.equal(indices, expected.indices)
    assert torch.allclose(scores, expected.values, atol=1e-12)


def test_exact_search_k_is_capped_at_corpus_size():
    queries, corpus = torch.randn(2, 4), torch.randn(3, 4)
    scores, indices = exact_search(queries, corpus, top_k=10, corpus_chunk_size=2)
    assert scores.shape == (2, 3)
    assert sorted(indices[0].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("score", ["cosine", "dot"])
def test_zero_vector_ranks_last_with_minus_inf_and_no_nan(score):
    query = torch.tensor([[1.0, 0.0]])  # (1, D)
    corpus = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.5], [2.0, 0.0]])  # (4, D)
    scores, indices = exact_search(query, corpus, top_k=4, corpus_chunk_size=3, score=score)
    assert not torch.isnan(scores).any()
    assert indices[0].tolist() == [3, 1, 2, 0]  # below the negative-cosine document too
    assert scores[0, 3].item() == float("-inf")
    zero_q, zero_rows = exact_search(torch.zeros(1, 2), corpus, top_k=4, score=score)
    assert zero_q[0].tolist() == [0.0, 0.0, 0.0, float("-inf")]
    assert zero_rows[0].tolist() == [1, 2, 3, 0]  # ties by row ascending


def test_exact_search_rejects_bad_input():
    with pytest.raises(ValueError, match="dimension"):
        exact_search(torch.randn(2, 3), torch.randn(4, 5), top_k=1)
    with pytest.raises(ValueError, match="2-D"):
        exact_search(torch.randn(3), torch.randn(4, 3), top_k=1)
    with pytest.raises(ValueError, match="top_k"):
        exact_search(torch.randn(2, 3), torch.randn(4, 3), top_k=0)
    with pytest.raises(ValueError, match="score"):
        exact_search(torch.randn(2, 3), torch.randn(4, 3), top_k=1, score="l2")


# ---- STS ----------------------------------------------------------------------------------

STS = ScoredPairs(
    sentence1=["a man plays the guitar", "a dog runs in the park", "the cat sits", "a child eats food",
               "the cat sits"],
    sentence2=["a man plays music", "the boy walks on the street", "a cat is sitting",
               "a red car", "the dog sits"],
    scores=[4.5, 1.0, 4.8, 0.2, 2.5],
    name="sts-dev",
)


def test_sts_on_tiny_model_matches_manual_computation(tiny_model):
    tiny_model.train()
    result = evaluate_sts(tiny_model, STS, batch_size=2)
    assert tiny_model.training  # encode() switches to eval mode; the evaluator restores it
    assert set(result) == {"spearman_cosine", "pearson_cosine"}
    assert all(math.isfinite(v) for v in result.values())
    e1 = tiny_model.encode(STS.sentence1, convert_to_tensor=True)  # (n, D)
    e2 = tiny_model.encode(STS.sentence2, convert_to_tensor=True)  # (n, D)
    cos = torch.nn.functional.cosine_similarity(e1, e2).tolist()
    assert result["spearman_cosine"] == pytest.approx(spearmanr(cos, STS.scores).statistic, abs=1e-6)
    assert result["pearson_cosine"] == pytest.approx(pearsonr(cos, STS.scores).statistic, abs=1e-5)
    evaluator = STSEvaluator(STS)
    assert evaluator.name == "sts-dev"
    assert evaluator(tiny_model) == pytest.approx(result, abs=1e-6)  # dropout off while encoding


def test_sts_encodes_each_sentence_once_and_checks_input():
    vectors = {"x": [1.0, 0.0], "y": [1.0, 1.0], "z": [0.0, 1.0]}
    enc = FakeEncoder(vectors)
    pairs = ScoredPairs(["x", "x", "z"], ["y", "z", "y"], [3.0, 0.0, 3.0])
    result = evaluate_sts(enc, pairs)
    assert enc.calls == [["x", "z", "y"]]
    assert result["spearman_cosine"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_sts(enc, ScoredPairs(["x"], ["y"], [1.0]))
    with pytest.raises(ValueError, match="at least 2"):
        STSEvaluator(ScoredPairs(["x"], ["y"], [1.0]))
    with pytest.raises(ValueError, match="equal"):
        evaluate_sts(enc, ScoredPairs(["x", "z"], ["y", "y"], [1.0, 1.0]))


# ---- retrieval ----------------------------------------------------------------------------

VECTORS = {
    "q one": [1.0, 0.0],
    "q two": [0.0, 1.0],
    "doc one": [1.0, 0.0],  # q1: cos 1,  q2: cos 0
    "doc two": [0.6, 0.8],  # q1: cos .6, q2: cos .8
    "doc three": [0.0, 1.0],  # q1: cos 0,  q2: cos 1
    "doc four": [-1.0, 0.0],  # q1: cos -1, q2: cos 0 (ties d1; d4 ranks first, trec_eval)
}
RSET = RetrievalSet(
    queries={"q1": "q one", "q2": "q two"},
    corpus={"d1": "doc one", "d2": "doc two", "d3": "doc three", "d4": "doc four"},
    relevant={"q1": {"d2": 1}, "q2": {"d3": 2, "d4": 1}},
    name="toy-ir",
)


def test_retrieval_on_hand_made_set():
    enc = FakeEncoder(VECTORS)
    m = evaluate_retrieval(enc, RSET, ks=(1, 10))
    # q1 ranks d1, d2, d3, d4: relevant d2 at rank 2.  q2 ranks d3, d2, d4, d1.
    ndcg_q1 = (1 / math.log2(3)) / 1.0
    ndcg_q2 = (2 + 1 / math.log2(4)) / (2 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-6)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1) / 2, abs=1e-9)
    assert m["mrr@1"] == pytest.approx(1 / 2, abs=1e-9)
    assert m["recall@1"] == pytest.approx((0 + 1 / 2) / 2, abs=1e-9)
    assert m["recall@10"] == pytest.approx(1.0, abs=1e-9)
    assert m["precision@1"] == pytest.approx(1 / 2, abs=1e-9)
    assert m["map@10"] == pytest.approx((1 / 2 + (1 + 2 / 3) / 2) / 2, abs=1e-6)
    # queries once; the corpus once, in id-descending rows, longest text first per batch (index path)
    assert enc.calls[0] == ["q one", "q two"]
    assert sorted(enc.calls[1]) == sorted(RSET.corpus.values()) and len(enc.calls) == 2


def test_retrieval_defaults_and_evaluator():
    enc = FakeEncoder(VECTORS)
    evaluator = RetrievalEvaluator(RSET)
    assert evaluator.name == "toy-ir" and evaluator.primary_metric == "ndcg@10"
    m = evaluator(enc)
    assert {"ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100", "precision@10"} <= set(m)
    assert m["recall@100"] == 1.0
    assert m == evaluate_retrieval(FakeEncoder(VECTORS), RSET)
    with pytest.raises(ValueError):
        RetrievalEvaluator(RSET, ks=())


def test_retrieval_judged_query_without_text_counts_zero():
    rset = RetrievalSet(RSET.queries, RSET.corpus, dict(RSET.relevant, q3={"d1": 1}))
    m = evaluate_retrieval(FakeEncoder(VECTORS), rset, ks=(10,))
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 + 0) / 3, abs=1e-9)


# ---- triplets -----------------------------------------------------------------------------

TRIPLET_VECTORS = {
    "a": [1.0, 0.0],
    "p1": [1.0, 0.1],
    "n1": [0.0, 1.0],  # correct: far from a
    "n2": [1.0, 0.05],  # wrong: closer to a than p1
    "b": [0.0, 1.0],
    "p2": [1.0, 1.0],
    "n3": [1.0, 0.0],  # correct
    "n4": [-1.0, 1.0],  # same cosine to b as p2: a tie, counted wrong
}
TRIPLETS = {
    "anchor": ["a", "b"],
    "positive": ["p1", "p2"],
    "negative_1": ["n1", "n3"],
    "negative_2": ["n2", "n4"],
}


def test_triplet_accuracy_half_by_design():
    enc = FakeEncoder(TRIPLET_VECTORS)
    assert evaluate_triplets(enc, TRIPLETS) == {"accuracy": 0.5}
    assert len(enc.calls) == 1
    assert len(enc.calls[0]) == len(set(enc.calls[0])) == 8


def test_triplet_accuracy_on_dataset_columns_by_name_with_padding():
    datasets = pytest.importorskip("datasets")
    swapped = {k: TRIPLETS[k] for k in ("negative_2", "positive", "negative_1", "anchor")}
    swapped["negative_3"] = ["n1", None]  # a row with fewer hard negatives: padded with None
    ds = datasets.Dataset.from_dict(swapped)
    result = TripletEvaluator(ds, name="triplet-dev")(FakeEncoder(TRIPLET_VECTORS))
    assert result == {"accuracy": pytest.approx(3 / 5)}


def test_triplet_euclidean_and_schema_errors():
    enc = FakeEncoder(TRIPLET_VECTORS)
    # Euclidean: row b: |b-p2| = 1, |b-n3| = sqrt(2) (correct), |b-n4| = 1 (tie, wrong).
    assert evaluate_triplets(enc, TRIPLETS, distance="euclidean") == {"accuracy": 0.5}
    with pytest.raises(DataSchemaError, match="negative_1"):
        evaluate_triplets(enc, {"anchor": ["a"], "positive": ["p1"]})
    with pytest.raises(DataSchemaError):
        TripletEvaluator({"anchor": ["a"], "negative_1": ["n1"]})
