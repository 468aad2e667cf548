"""Evaluation: pure ranking metrics, and STS / triplet / retrieval evaluators.

The ``evaluate_*`` functions take any object with a SentenceTransformer-like
``encode(texts, batch_size=..., convert_to_tensor=True, show_progress_bar=...)``. The
:class:`Evaluator` wrappers bind an evaluation set and a name, so the training loop can
call ``evaluator(model)`` every N steps and log ``f"{evaluator.name}/{key}"``
(e.g. ``"sts-dev/spearman_cosine"``); ``primary_metric`` names the key to select on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sbert_triplet.data.types import RetrievalSet, ScoredPairs
from sbert_triplet.evaluation.metrics import (
    average_precision_at_k,
    check_ks,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    precision_at_k,
    rank,
    recall_at_k,
    retrieval_metrics,
)
from sbert_triplet.evaluation.retrieval import evaluate_retrieval
from sbert_triplet.evaluation.sts import encode_unique, evaluate_sts
from sbert_triplet.evaluation.triplet import evaluate_triplets, triplet_columns
from sbert_triplet.similarity import Distance, get_distance


class Evaluator:
    """An evaluation set bound to a name: ``evaluator(model) -> {metric: float}``.

    Metric keys are returned without the name prefix; ``name`` and ``primary_metric``
    (the key where larger is better, for picking the best checkpoint) are attributes.
    """

    primary_metric: str = ""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an evaluator needs a non-empty name, got {name!r}")
        self.name = name

    def __call__(self, model: Any) -> dict[str, float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class STSEvaluator(Evaluator):
    """Spearman / Pearson correlation of cosine similarity with gold scores (:func:`evaluate_sts`).

    Raises:
        ValueError: fewer than 2 pairs (checked here, not at the first evaluation).
    """

    primary_metric = "spearman_cosine"

    def __init__(self, pairs: ScoredPairs, name: str | None = None, batch_size: int = 32) -> None:
        super().__init__(name or pairs.name)
        if len(pairs) < 2:
            raise ValueError(f"STS set {self.name!r} has {len(pairs)} pair(s); need at least 2")
        self.pairs = pairs
        self.batch_size = batch_size

    def __call__(self, model: Any) -> dict[str, float]:
        return evaluate_sts(model, self.pairs, batch_size=self.batch_size)


class TripletEvaluator(Evaluator):
    """Triplet accuracy, d(anchor, positive) < d(anchor, negative_j) (:func:`evaluate_triplets`).

    Raises:
        DataSchemaError: the dataset lacks ``anchor``, ``positive`` or a negative column.
        ConfigError: unknown distance.
    """

    primary_metric = "accuracy"

    def __init__(
        self,
        dataset: Any,
        name: str = "triplet",
        distance: str | Distance = "cosine",
        batch_size: int = 32,
    ) -> None:
        super().__init__(name)
        triplet_columns(dataset)  # fail now, not at the first evaluation
        self.dataset = dataset
        self.distance = get_distance(distance)
        self.batch_size = batch_size

    def __call__(self, model: Any) -> dict[str, float]:
        return evaluate_triplets(model, self.dataset, self.distance, batch_size=self.batch_size)


class RetrievalEvaluator(Evaluator):
    """nDCG / MRR / Recall / Precision / MAP at each k (:func:`evaluate_retrieval`), through
    the index path (``backend``: ``"exact"`` or a FAISS backend of ``build_index``).

    Raises:
        ValueError: bad ``ks``.
    """

    primary_metric = "ndcg@10"

    def __init__(
        self,
        rset: RetrievalSet,
        name: str | None = None,
        ks: Iterable[int] = (10, 100),
        batch_size: int = 32,
        show_progress_bar: bool = False,
        backend: str = "exact",
        index_options: dict | None = None,
    ) -> None:
        super().__init__(name or rset.name)
        self.rset = rset
        self.ks = check_ks(ks)
        self.primary_metric = f"ndcg@{10 if 10 in self.ks else self.ks[0]}"
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.backend = backend
        self.index_options = dict(index_options or {})

    def __call__(self, model: Any) -> dict[str, float]:
        return evaluate_retrieval(
            model, self.rset, self.ks, self.batch_size, show_progress_bar=self.show_progress_bar,
            backend=self.backend, index_options=self.index_options,
        )


__all__ = [
    "Evaluator",
    "RetrievalEvaluator",
    "STSEvaluator",
    "TripletEvaluator",
    "average_precision_at_k",
    "encode_unique",
    "evaluate_retrieval",
    "evaluate_sts",
    "evaluate_triplets",
    "mrr_at_k",
    "ndcg_at_k",
    "per_query_metrics",
    "precision_at_k",
    "rank",
    "recall_at_k",
    "retrieval_metrics",
]
