"""Positive-aware hard-negative mining, as small steps: embed -> search -> filter -> sample -> write.

Moreira et al. 2024, "NV-Retriever: Improving text embedding models with effective
hard-negative mining" (arXiv:2407.15831): candidates are retrieved by a teacher model
(and / or BM25); those scoring too close to the query's positive are treated as likely
false negatives and removed (see :mod:`sbert_triplet.mining.filters` for the exact rules).
Negatives are chosen per *query*; every (query, positive) row of that query gets the same
negatives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sbert_triplet.mining import filters
from sbert_triplet.mining.candidates import bm25_candidates, dense_candidates, dense_scores, embed
from sbert_triplet.mining.config import MiningConfig
from sbert_triplet.mining.inputs import MiningInput
from sbert_triplet.mining.sample import sample_negatives


class QueryCandidates(NamedTuple):
    """One query's retrieved candidates before filtering.

    ``sources`` maps ``"dense"`` / ``"bm25"`` to corpus rows in that retriever's rank order;
    ``positive_score`` is the minimum dense cosine between the query and its positives.
    """

    text: str
    positives: list[int]
    positive_score: float
    sources: dict[str, list[int]]


@dataclass
class MinedQuery:
    """A query's outcome: chosen negative rows (best first) and the dense cosines."""

    text: str
    positives: list[int]
    positive_scores: list[float]
    negatives: list[int]
    negative_scores: list[float]


@dataclass
class MiningResult:
    """All queries' outcomes and the counts of :mod:`filters` (plus ``queries``,
    ``candidates`` = rows retrieved over all retrievers, ``short_queries``)."""

    queries: list[MinedQuery]
    counts: Counter = field(default_factory=Counter)


def retrieve(
    data: MiningInput, query_embeddings: Any, corpus_embeddings: Any, config: MiningConfig
) -> dict[str, list[list[int]]]:
    """Candidate rows per retriever (``{"dense": [...], "bm25": [...]}``, one list per query).

    Each retriever is asked for ``range_max + max #positives + 1`` documents, so that
    removing the positives and the query text still leaves ``range_max`` ranks (fewer when
    the corpus is smaller, BM25 finds fewer lexical matches, or texts repeat).
    """
    depth = config.range_max + max(len(p) for p in data.positives) + 1
    sources: dict[str, list[list[int]]] = {}
    if config.candidates in ("dense", "both"):
        sources["dense"] = dense_candidates(query_embeddings, corpus_embeddings, depth, config.search)
    if config.candidates in ("bm25", "both"):
        sources["bm25"] = bm25_candidates(data.queries, data.corpus, depth)
    return sources


def select_negatives(
    query: QueryCandidates,
    corpus: Sequence[str],
    config: MiningConfig,
    score_fn: Callable[[list[int]], list[float]],
    rng: Any,
    counts: Counter,
) -> tuple[list[int], list[float]]:
    """Filter then sample one query's candidates (steps 3-4); ``score_fn(rows)`` gives the
    dense cosines of corpus rows with the query. Returns ``(rows, cosines)``, best first,
    at most ``config.num_negatives`` (fewer: ``counts["short_queries"] += 1``)."""
    windows = []
    for name in ("dense", "bm25"):
        rows = query.sources.get(name, [])
        counts["candidates"] += len(rows)
        kept = filters.exclude_known(rows, set(query.positives), query.text, corpus, counts)
        windows.append(filters.rank_window(kept, config.range_min, config.range_max, counts))
    merged = filters.merge_sources(windows[0], windows[1], corpus, counts)
    threshold = filters.false_negative_threshold(query.positive_score, config.max_score_ratio, config.margin)
    rows, scores = filters.drop_false_negatives(merged, score_fn(merged), threshold, counts)
    chosen = sample_negatives(rows, scores, config.num_negatives, config.sampling, rng)
    if len(chosen) < config.num_negatives:
        counts["short_queries"] += 1
    score_of = dict(zip(rows, scores))
    return chosen, [score_of[r] for r in chosen]


def mine_hard_negatives(model: Any, data: MiningInput, config: MiningConfig) -> MiningResult:
    """Embed, search, filter and sample hard negatives for every query of ``data``.

    Args:
        model: SentenceTransformer-like (``encode(..., convert_to_tensor=True)``); cosine
            similarity of its embeddings is the score throughout.
        data: queries, known positives and corpus (:mod:`sbert_triplet.mining.inputs`).
        config: :class:`MiningConfig`.

    Raises:
        ValueError: the encoder returns the wrong shape (from :func:`embed`).
    """
    import numpy as np

    query_embeddings = embed(model, data.queries, config.batch_size)  # (Q, D)
    corpus_embeddings = embed(model, data.corpus, config.batch_size)  # (N, D)
    sources = retrieve(data, query_embeddings, corpus_embeddings, config)
    rng = np.random.default_rng(config.seed)
    result = MiningResult(queries=[], counts=Counter(queries=len(data.queries)))
    for i, text in enumerate(data.queries):
        positive_scores = dense_scores(query_embeddings[i], corpus_embeddings, data.positives[i])
        query = QueryCandidates(text, data.positives[i], min(positive_scores),
                                {name: lists[i] for name, lists in sources.items()})

        def score_fn(rows: list[int], i: int = i) -> list[float]:
            return dense_scores(query_embeddings[i], corpus_embeddings, rows)

        rows, scores = select_negatives(query, data.corpus, config, score_fn, rng, result.counts)
        result.queries.append(MinedQuery(text, data.positives[i], positive_scores, rows, scores))
    return result
