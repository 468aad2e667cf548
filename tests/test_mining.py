"""Hard-negative mining steps on hand-built candidates and a fake encoder with fixed vectors."""

from collections import Counter

import numpy as np
import pytest
import torch

from sbert_triplet.errors import ConfigError
from sbert_triplet.mining import (
    MiningConfig, MiningInput, QueryCandidates, bm25_candidates, from_pairs, mine_hard_negatives,
    sample_negatives, select_negatives, triplet_rows,
)
from sbert_triplet.mining import filters

CORPUS = ["a", "b", "c"]


class FakeEncoder:
    """``encode`` returns fixed vectors looked up by text."""

    def __init__(self, vectors):
        self.vectors = vectors

    def encode(self, texts, batch_size=32, convert_to_tensor=True, show_progress_bar=False):
        return torch.tensor([self.vectors[t] for t in texts], dtype=torch.float32)


def _fixed_scores(table):
    return lambda rows: [table[r] for r in rows]


def test_retrieval_finding_only_b_gives_b_and_reports_short_query():
    counts = Counter()
    query = QueryCandidates("q", [0], 1.0, {"dense": [1]})
    rows, scores = select_negatives(query, CORPUS, MiningConfig(num_negatives=2), _fixed_scores({1: 0.5}),
                                    None, counts)
    assert [CORPUS[r] for r in rows] == ["b"] and scores == [0.5]
    assert counts["short_queries"] == 1


def test_positive_and_repeats_returned_by_retriever_are_never_negatives():
    counts = Counter()
    query = QueryCandidates("q", [0], 1.0, {"dense": [0, 1, 1], "bm25": [1, 0]})
    rows, _ = select_negatives(query, CORPUS, MiningConfig(num_negatives=2), _fixed_scores({1: 0.5}), None, counts)
    assert rows == [1]
    assert counts["removed_known_positive"] == 2 and counts["removed_duplicate"] == 2
    assert counts["short_queries"] == 1 and counts["candidates"] == 5


def test_fake_encoder_end_to_end_never_picks_the_positive():
    vectors = {"q": [1.0, 0.0], "a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.6, 0.8]}
    data = MiningInput(["q"], [[0]], CORPUS, ["0", "1", "2"])
    result = mine_hard_negatives(FakeEncoder(vectors), data, MiningConfig(num_negatives=2))
    mined = result.queries[0]
    assert [CORPUS[r] for r in mined.negatives] == ["b", "c"]
    assert mined.negative_scores == pytest.approx([0.8, 0.6])
    assert mined.positive_scores == pytest.approx([1.0])
    assert result.counts["removed_known_positive"] == 1 and result.counts["short_queries"] == 0


def test_three_negatives_asked_from_two_left_is_short_and_its_rows_dropped():
    vectors = {"q": [1.0, 0.0], "a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.6, 0.8]}
    data = MiningInput(["q"], [[0]], CORPUS, ["0", "1", "2"])
    result = mine_hard_negatives(FakeEncoder(vectors), data, MiningConfig(num_negatives=3))
    assert result.counts["short_queries"] == 1 and len(result.queries[0].negatives) == 2
    rows, dropped = triplet_rows(result, CORPUS, 3)
    assert rows == [] and dropped == 1


def test_query_text_in_corpus_is_excluded():
    counts = Counter()
    kept = filters.exclude_known([0, 1, 2], {1}, "c", CORPUS, counts)
    assert kept == [0] and counts["removed_query_text"] == 1 and counts["removed_known_positive"] == 1


def test_identical_text_to_a_positive_or_earlier_candidate_is_removed():
    corpus = ["a", "b", "a", "b"]
    counts = Counter()
    assert filters.exclude_known([1, 2, 3], {0}, "q", corpus, counts) == [1]
    assert counts["removed_known_positive"] == 1 and counts["removed_duplicate"] == 1


def test_rank_window_counts_ranks_after_removing_positives():
    counts = Counter()
    kept = filters.exclude_known([0, 1, 2, 3], {0}, "q", ["p", "x", "y", "z"], counts)
    assert filters.rank_window(kept, 1, 3, counts) == [2, 3]
    assert filters.rank_window(kept, 0, 1, counts) == [1]
    assert counts["removed_out_of_range"] == 1 + 2


@pytest.mark.parametrize("rule", [{"max_score_ratio": 0.95}, {"max_score_ratio": None, "margin": 0.05}])
def test_positive_aware_filter_drops_097_keeps_090(rule):
    counts = Counter()
    cfg = MiningConfig(num_negatives=2, **rule)
    threshold = filters.false_negative_threshold(0.8, cfg.max_score_ratio, cfg.margin)
    rows, scores = filters.drop_false_negatives([1, 2], [0.97 * 0.8, 0.9 * 0.8], threshold, counts)
    assert rows == [2] and scores == pytest.approx([0.72])
    assert counts["removed_false_negative"] == 1


def test_filter_uses_the_minimum_positive_score():
    vectors = {"q": [1.0, 0.0], "p1": [1.0, 0.0], "p2": [0.8, 0.6], "n1": [0.78, 0.626], "n2": [0.7, 0.714]}
    corpus = ["p1", "p2", "n1", "n2"]
    data = MiningInput(["q"], [[0, 1]], corpus, ["0", "1", "2", "3"])
    result = mine_hard_negatives(FakeEncoder(vectors), data, MiningConfig(num_negatives=1))
    # min positive cosine 0.8 -> threshold 0.76: n1 (0.78) is a likely false negative, n2 (0.7) kept.
    assert [corpus[r] for r in result.queries[0].negatives] == ["n2"]
    assert result.counts["removed_false_negative"] == 1
    rows, dropped = triplet_rows(result, corpus, 1)
    assert [(r["positive"], r["negative_1"]) for r in rows] == [("p1", "n2"), ("p2", "n2")] and dropped == 0


def test_bm25_returns_lexical_matches_first():
    corpus = ["the cat sits on the mat", "dogs run in the park", "a red car on the street", "cat food and cat toys"]
    hits = bm25_candidates(["cat food", "dogs park", "zebra"], corpus, top_k=4)
    assert hits[0][:2] == [3, 0]
    assert hits[1][0] == 1 and 3 not in hits[1]
    assert hits[2] == []


def test_merge_keeps_dense_order_then_bm25_and_dedups():
    counts = Counter()
    corpus = ["w", "x", "y", "z", "y"]
    assert filters.merge_sources([1, 2], [2, 3, 1, 4], corpus, counts) == [1, 2, 3]
    assert counts["removed_duplicate"] == 3


def test_sampling_top_and_random_never_repeat_or_pad():
    rows, scores = [5, 6, 7, 8], [0.1, 0.4, 0.3, 0.2]
    assert sample_negatives(rows, scores, 2) == [6, 7]
    picked = sample_negatives(rows, scores, 3, "random", np.random.default_rng(0))
    again = sample_negatives(rows, scores, 3, "random", np.random.default_rng(0))
    assert picked == again and len(set(picked)) == 3 and set(picked) <= set(rows)
    assert sample_negatives([5], [0.1], 3, "random", np.random.default_rng(0)) == [5]
    assert sample_negatives([], [], 3) == []


@pytest.mark.parametrize("kwargs", [
    {"candidates": "sparse"}, {"range_min": 5, "range_max": 5}, {"num_negatives": 0},
    {"margin": 0.1}, {"max_score_ratio": 1.5}, {"sampling": "hard"}, {"max_score_ratio": None, "margin": -1.0},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        MiningConfig(**kwargs)


def test_pairs_file_corpus_is_the_distinct_positives_and_negatives(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [("q1", "p1", "n1"), ("q1", "p2", "p1"), ("q2", "p1", "n2")]
    path.write_text("".join(f'{{"anchor": "{a}", "positive": "{p}", "negative": "{n}"}}\n' for a, p, n in rows))
    data = from_pairs(path)
    assert data.queries == ["q1", "q2"]
    assert data.corpus == ["p1", "p2", "n1", "n2"]
    assert data.positives == [[0, 1], [0]]


def test_repeated_rows_are_written_once():
    from sbert_triplet.mining.write import unique_rows

    rows = [{"anchor": "q", "positive": "a", "negative_1": "b"}, {"anchor": "q2", "positive": "a", "negative_1": "b"},
            {"anchor": "q", "positive": "a", "negative_1": "b"}]
    kept, removed = unique_rows(rows)
    assert kept == rows[:2] and removed == 1
