"""Ranking metrics: hand-computed cases and an independent re-implementation."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from sbert_triplet.evaluation.metrics import (
    average_precision_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    rank,
    recall_at_k,
    retrieval_metrics,
)

# One query: a, b, c, d ranked in that order; b (grade 2) and c (grade 3) are retrieved at
# ranks 2 and 3, e (grade 1) is never retrieved, z is judged non-relevant (grade 0).
RUN = {"q1": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.1}}
QRELS = {"q1": {"b": 2, "c": 3, "e": 1, "z": 0}}


def test_rank_sorts_by_score_then_doc_id_descending():
    assert rank({"x": 0.1, "y": 0.9, "a": 0.5, "b": 0.5}) == ["y", "b", "a", "x"]
    assert rank({}) == []
    with pytest.raises(ValueError, match="NaN"):
        rank({"a": float("nan")})


def test_mrr_relevant_at_rank_three():
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.1}}
    qrels = {"q": {"c": 1}}
    assert retrieval_metrics(run, qrels, ks=(10,))["mrr@10"] == pytest.approx(1 / 3, abs=1e-15)
    assert mrr_at_k(["a", "b", "c"], {"c": 1}, 2) == 0.0


@pytest.mark.parametrize("order", list(itertools.permutations(["d1", "d2", "d3"])))
def test_ties_broken_by_doc_id_descending_whatever_the_input_order(order):
    run = {"q": {doc_id: 0.5 for doc_id in order}}
    qrels = {"q": {"d1": 1}}
    assert rank(run["q"]) == ["d3", "d2", "d1"]
    metrics = retrieval_metrics(run, qrels, ks=(10,))
    assert metrics["mrr@10"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["ndcg@10"] == pytest.approx(0.5, abs=1e-15)  # (1 / log2(4)) / 1


def test_graded_ndcg_by_hand():
    ranked = rank(RUN["q1"])
    assert ranked == ["a", "b", "c", "d"]
    dcg = 0 / math.log2(2) + 2 / math.log2(3) + 3 / math.log2(4) + 0 / math.log2(5)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, QRELS["q1"], 10) == pytest.approx(dcg / idcg, abs=1e-15)
    dcg2 = 2 / math.log2(3)
    idcg2 = 3 / math.log2(2) + 2 / math.log2(3)
    assert ndcg_at_k(ranked, QRELS["q1"], 2) == pytest.approx(dcg2 / idcg2, abs=1e-15)
    assert ndcg_at_k(["c", "b", "e"], QRELS["q1"], 3) == pytest.approx(1.0, abs=1e-15)
    assert ndcg_at_k(ranked, {"z": 0}, 10) == 0.0


def test_recall_precision_map_by_hand():
    ranked, rel = rank(RUN["q1"]), QRELS["q1"]  # relevant at ranks 2 and 3; 3 relevant
    assert recall_at_k(ranked, rel, 1) == 0.0
    assert recall_at_k(ranked, rel, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, rel, 10) == pytest.approx(2 / 3)
    assert precision_at_k(ranked, rel, 2) == pytest.approx(1 / 2)
    assert precision_at_k(ranked, rel, 10) == pytest.approx(2 / 10)  # divides by k
    assert average_precision_at_k(ranked, rel, 2) == pytest.approx((1 / 2) / 3)
    assert average_precision_at_k(ranked, rel, 10) == pytest.approx((1 / 2 + 2 / 3) / 3)
    metrics = retrieval_metrics(RUN, QRELS, ks=(2, 10))
    assert metrics["map@10"] == pytest.approx(7 / 18, abs=1e-15)
    assert metrics["recall@2"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["mrr@2"] == pytest.approx(1 / 2, abs=1e-15)


def test_keys_and_plain_floats():
    metrics = retrieval_metrics(RUN, QRELS)
    expected = {f"{m}@{k}" for m in ("ndcg", "mrr", "recall", "precision", "map") for k in (10, 100)}
    assert set(metrics) == expected
    assert all(type(v) is float for v in metrics.values())


def test_query_without_relevant_doc_is_excluded():
    run = dict(RUN, q2={"a": 1.0}, q3={"b": 1.0})
    qrels = dict(QRELS, q2={"a": 0}, q3={})
    assert retrieval_metrics(run, qrels) == retrieval_metrics(RUN, QRELS)


def test_query_missing_from_run_counts_zero_and_unjudged_run_query_is_ignored():
    run = {"q1": {"a": 1.0, "b": 0.5}, "q_unjudged": {"a": 1.0}}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}  # q2 has no run entry
    metrics = retrieval_metrics(run, qrels, ks=(10,))
    assert metrics["mrr@10"] == 0.5
    assert metrics["ndcg@10"] == 0.5
    assert metrics["recall@10"] == 0.5
    assert metrics["map@10"] == 0.5


@pytest.mark.parametrize("ks", [(), (0,), (10, -1), (2.5,)])
def test_bad_ks_raise(ks):
    with pytest.raises(ValueError):
        retrieval_metrics(RUN, QRELS, ks=ks)


def test_no_relevant_query_raises():
    with pytest.raises(ValueError, match="no query"):
        retrieval_metrics(RUN, {"q1": {"a": 0}})


# ---- independent implementation (numpy, distinct scores) --------------------------------


def _reference(run, qrels, k):
    out = {"ndcg": [], "mrr": [], "recall": [], "precision": [], "map": []}
    for qid, rel in qrels.items():
        n_rel = sum(g > 0 for g in rel.values())
        if n_rel == 0:
            continue
        docs = sorted(run.get(qid, {}).items(), key=lambda item: -item[1])[:k]
        grades = np.array([max(rel.get(d, 0), 0) for d, _ in docs], dtype=float)
        hits = grades > 0
        discounts = 1.0 / np.log2(np.arange(2, len(grades) + 2))
        ideal = np.sort(np.array([g for g in rel.values() if g > 0], dtype=float))[::-1][:k]
        idcg = float((ideal / np.log2(np.arange(2, len(ideal) + 2))).sum())
        out["ndcg"].append(float((grades * discounts).sum()) / idcg)
        first = np.flatnonzero(hits)
        out["mrr"].append(1.0 / (first[0] + 1) if len(first) else 0.0)
        out["recall"].append(hits.sum() / n_rel)
        out["precision"].append(hits.sum() / k)
        prec_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out["map"].append(float((prec_at * hits).sum()) / n_rel)
    return {f"{name}@{k}": float(np.mean(values)) for name, values in out.items()}


@pytest.mark.parametrize("seed", range(5))
def test_matches_independent_implementation_on_random_runs(seed):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    run, qrels = {}, {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(0, 12))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if rng.random() < 0.9:  # some queries are missing from the run
            retrieved = rng.sample(docs, rng.randint(1, 40))
            scores = rng.sample(range(10_000), len(retrieved))  # distinct
            run[qid] = {d: s / 997.0 for d, s in zip(retrieved, scores)}
    ks = (1, 5, 10, 30)
    ours = retrieval_metrics(run, qrels, ks=ks)
    for k in ks:
        for key, value in _reference(run, qrels, k).items():
            assert ours[key] == pytest.approx(value, abs=1e-12), key
