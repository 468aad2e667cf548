"""Containers shared by the data adapters and the evaluators.

Training data itself is a ``datasets.Dataset`` in the canonical schema (see
:mod:`sbert_triplet.data.schema`); these small frozen dataclasses hold evaluation sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScoredPairs:
    """Sentence pairs with a gold similarity score (STS: 0-5, SICK: 1-5).

    ``sentence1[i]``, ``sentence2[i]`` and ``scores[i]`` describe pair ``i``.
    """

    sentence1: list[str]
    sentence2: list[str]
    scores: list[float]
    name: str = "sts"

    def __post_init__(self) -> None:
        n = len(self.sentence1)
        if len(self.sentence2) != n or len(self.scores) != n:
            raise ValueError(
                f"ScoredPairs {self.name!r}: sentence1, sentence2 and scores must have the same "
                f"length, got {n}, {len(self.sentence2)} and {len(self.scores)}"
            )

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class RetrievalSet:
    """An information-retrieval evaluation set (BEIR layout).

    Attributes:
        queries: query id -> query text, only the queries that have judgements.
        corpus: document id -> document text (BEIR: ``title + " " + text``).
        relevant: query id -> {document id: graded relevance > 0}.
        name: a label used in metric names and logs.
    """

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, dict[str, int]]
    name: str = "ir"
    corpus_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.corpus_ids:
            object.__setattr__(self, "corpus_ids", list(self.corpus))
