"""Our ranking metrics equal trec_eval's (through pytrec_eval) on the same runs, within 1e-9.

pytrec_eval measures: ``ndcg_cut.k`` (graded gains), ``P.k``, ``recall.k``, ``map_cut.k``
and ``recip_rank`` (no cutoff; MRR@k is 1/rank when that rank is <= k, else 0). trec_eval
ranks by score descending, ties by document id descending, as :func:`rank` does. Per-query
values are compared for every query, including queries with no relevant document (0.0
in both). The mean: ours is over the queries with a relevant document, judged queries
missing from the run count 0 (trec_eval ``-c`` on those queries).
"""

from __future__ import annotations

import itertools
import random

import pytest
import pytrec_eval

from sbert_triplet.evaluation.metrics import per_query_metrics, retrieval_metrics

KS = (1, 3, 5, 10, 20)
MEASURES = {f"{m}.{','.join(map(str, KS))}" for m in ("ndcg_cut", "P", "recall", "map_cut")} | {"recip_rank"}
TREC_NAME = {"ndcg": "ndcg_cut", "precision": "P", "recall": "recall", "map": "map_cut"}


def trec_per_query(run, qrels):
    """pytrec_eval's values renamed to our keys, for the queries in both run and qrels."""
    evaluated = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)
    out = {}
    for qid, values in evaluated.items():
        ours = {f"{name}@{k}": values[f"{trec}_{k}"] for name, trec in TREC_NAME.items() for k in KS}
        rr = values["recip_rank"]
        for k in KS:
            ours[f"mrr@{k}"] = rr if rr > 0 and round(1 / rr) <= k else 0.0
        out[qid] = ours
    return out


def random_case(seed: int, tie_levels: int):
    """Graded qrels (0-3), queries without a relevant document, queries absent from the
    run, and scores drawn from ``tie_levels`` values (few levels: many ties)."""
    rng = random.Random(seed)
    docs = [f"doc{i:03d}" if i % 3 else f"D{i}" for i in range(80)]  # mixed case: string order matters
    run, qrels = {}, {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 15))
        qrels[qid] = {d: rng.choice([0, 0, 1, 1, 2, 3]) for d in judged}
        if q % 7 == 0:
            qrels[qid] = {d: 0 for d in judged}  # judged, nothing relevant
        if q % 11 != 5:  # some judged queries are missing from the run
            retrieved = rng.sample(docs, rng.randint(1, 40))
            run[qid] = {d: rng.randrange(tie_levels) / tie_levels for d in retrieved}
    run["unjudged"] = {"doc001": 1.0}
    return run, qrels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tie_levels", [3, 20, 10_000])
def test_per_query_equals_pytrec_eval(seed, tie_levels):
    run, qrels = random_case(seed, tie_levels)
    ours = per_query_metrics(run, qrels, KS)
    theirs = trec_per_query(run, qrels)
    assert set(theirs) == set(run) & set(qrels)
    for qid, values in theirs.items():
        for key, value in values.items():
            assert ours[qid][key] == pytest.approx(value, abs=1e-9), (qid, key)
    no_relevant = [q for q, rel in qrels.items() if not any(g > 0 for g in rel.values())]
    assert no_relevant and all(v == 0.0 for q in no_relevant for v in ours[q].values())
    assert all(v == 0.0 for q in set(qrels) - set(run) for v in ours[q].values())


@pytest.mark.parametrize("seed", range(6))
def test_mean_equals_pytrec_eval_mean_over_queries_with_a_relevant_document(seed):
    run, qrels = random_case(seed, tie_levels=5)
    theirs = trec_per_query(run, qrels)
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    ours = retrieval_metrics(run, qrels, KS)
    for key in ours:
        expected = sum(theirs[q][key] if q in theirs else 0.0 for q in judged) / len(judged)
        assert ours[key] == pytest.approx(expected, abs=1e-9), key


@pytest.mark.parametrize("order", list(itertools.permutations(["d1", "d2", "d3"])))
def test_three_way_tie_equals_trec_eval_in_any_order(order):
    run = {"q": {doc_id: 0.5 for doc_id in order}}
    qrels = {"q": {"d1": 1}}
    ours = retrieval_metrics(run, qrels, ks=(10,))
    theirs = trec_per_query(run, qrels)["q"]
    assert ours["mrr@10"] == pytest.approx(1 / 3, abs=1e-12) == theirs["mrr@10"]
    assert ours["ndcg@10"] == pytest.approx(0.5, abs=1e-12)
    assert theirs["ndcg@10"] == pytest.approx(0.5, abs=1e-12)


def test_graded_gains_by_hand_and_pytrec_eval():
    # ranked c (grade 1), x (0), b (grade 2): DCG = 1 + 2 / log2(4) = 2; IDCG = 2 + 1 / log2(3)
    run = {"q": {"c": 0.9, "x": 0.3, "b": 0.1}}
    qrels = {"q": {"b": 2, "c": 1}}
    import math

    expected = 2 / (2 + 1 / math.log2(3))
    assert per_query_metrics(run, qrels, (10,))["q"]["ndcg@10"] == pytest.approx(expected, abs=1e-12)
    assert trec_per_query(run, qrels)["q"]["ndcg@10"] == pytest.approx(expected, abs=1e-12)
