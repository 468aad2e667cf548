"""The one configuration object of hard-negative mining, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from sbert_triplet.errors import ConfigError

CANDIDATE_SOURCES = ("dense", "bm25", "both")
SEARCH_BACKENDS = ("exact", "faiss-flat", "faiss-hnsw", "faiss-ivf")
SAMPLING = ("top", "random")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class MiningConfig:
    """Positive-aware hard-negative mining (Moreira et al. 2024, NV-Retriever, arXiv:2407.15831).

    Attributes:
        candidates: ``"dense"`` (exact cosine search), ``"bm25"`` (bm25s) or ``"both"``
            (dense candidates in dense-rank order, then BM25-only ones in BM25-rank order).
        range_min: first rank kept (0-based, inclusive). Ranks count a retriever's
            candidates after removing known positives, the query text and duplicates.
        range_max: rank bound (0-based, exclusive): ranks ``range_min .. range_max - 1`` are
            kept, so at most ``range_max - range_min`` candidates per retriever.
        num_negatives: K negatives per query; a query with fewer left is "short".
        max_score_ratio: drop a candidate whose cosine > ratio x (minimum positive cosine)
            ("TopK-PercPos", default 0.95). ``None`` disables it.
        margin: drop a candidate whose cosine > (minimum positive cosine) - margin
            ("TopK-MarginPos"). Give either ``margin`` or ``max_score_ratio``, not both.
        sampling: ``"top"`` (the K highest-scoring survivors) or ``"random"`` (K of them,
            uniformly, with ``seed``).
        seed: seed of the random sampling.
        batch_size: texts per ``model.encode`` call.
        search: dense candidate search: ``"exact"`` (chunked brute force, the reference) or a
            FAISS index (``"faiss-flat"`` exact inner product, ``"faiss-hnsw"`` / ``"faiss-ivf"``
            approximate: faster on large corpora, may miss some neighbours).

    Raises:
        ConfigError: a value out of range, an unknown choice, or both false-negative rules.
    """

    candidates: str = "dense"
    range_min: int = 0
    range_max: int = 50
    num_negatives: int = 1
    max_score_ratio: Optional[float] = 0.95
    margin: Optional[float] = None
    sampling: str = "top"
    seed: int = 42
    batch_size: int = 64
    search: str = "exact"

    def __post_init__(self) -> None:
        if self.search not in SEARCH_BACKENDS:
            raise ConfigError(f"search must be one of {list(SEARCH_BACKENDS)}, got {self.search!r}")
        if self.candidates not in CANDIDATE_SOURCES:
            raise ConfigError(f"candidates must be one of {list(CANDIDATE_SOURCES)}, got {self.candidates!r}")
        if self.sampling not in SAMPLING:
            raise ConfigError(f"sampling must be one of {list(SAMPLING)}, got {self.sampling!r}")
        for name in ("range_min", "range_max", "num_negatives", "seed", "batch_size"):
            if not _is_int(getattr(self, name)):
                raise ConfigError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if self.range_min < 0 or self.range_max <= self.range_min:
            raise ConfigError(
                f"need 0 <= range_min < range_max, got range_min={self.range_min}, range_max={self.range_max}"
            )
        if self.num_negatives < 1 or self.batch_size < 1:
            raise ConfigError("num_negatives and batch_size must be >= 1")
        if self.max_score_ratio is not None and self.margin is not None:
            raise ConfigError("give either max_score_ratio or margin, not both (set max_score_ratio=None)")
        if self.max_score_ratio is not None and not 0.0 < self.max_score_ratio <= 1.0:
            raise ConfigError(f"max_score_ratio must be in (0, 1], got {self.max_score_ratio}")
        if self.margin is not None and self.margin < 0.0:
            raise ConfigError(f"margin must be >= 0 (a cosine difference), got {self.margin}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the mining report)."""
        return asdict(self)
