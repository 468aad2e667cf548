"""Turning dataset rows into model inputs and embeddings.

A collated batch is a dict with

- ``texts``: ``{column: list[str]}``, the raw texts (false-negative masks are decided from them);
- ``features``: an :class:`~sbert_triplet.training.bucketing.EncodePlan`: the batch's texts,
  tokenised once per distinct text when the loader was built (with the encoder's own
  ``SentenceTransformer.preprocess``), sorted by length and padded in a few
  length-homogeneous chunks (or one chunk per column with bucketing off), and where each
  chunk's rows go back. :func:`embed_batch` and the gradient cache also take the older form
  ``{column: tokenised features}`` (one padded chunk per column);
- ``labels``: an int64 tensor (B,) when the data has a label per row (class ids for the
  label losses, relevance levels for the ladder loss), else absent.

Text columns are ``anchor``, ``positive``, ``negative_1..k`` for pairs and triplets, and
``text`` for labelled data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sbert_triplet.training.bucketing import BucketPlanner, EncodePlan, TokenCache, encode_plan


def negative_columns(column_names: list[str]) -> list[str]:
    """The ``negative_<n>`` columns in numeric order."""
    negs = [c for c in column_names if c.startswith("negative_")]
    return sorted(negs, key=lambda c: int(c.split("_")[1]))


class RowCollator:
    """Collate dataset rows (dicts) into ``{"texts", "features"[, "labels"]}`` for the loop.

    No tokenisation happens here: each text's tokens come from ``cache`` (built once for
    the whole dataset), and ``planner`` pads them into the batch's chunks.

    Args:
        cache: the dataset's texts, tokenised (:class:`~sbert_triplet.training.bucketing.TokenCache`).
        columns: the text columns, encoded in this order.
        planner: builds the batch's encode plan (length buckets, gradient-cache budget).
        label_column: a column holding one label per row, or None.
        label_ids: maps a row's label to its int id (class labels kept as given, str or
            int); None means the labels are ints already.
    """

    def __init__(self, cache: TokenCache, columns: list[str], planner: BucketPlanner | None = None,
                 label_column: str | None = None, label_ids: dict[Any, int] | None = None) -> None:
        self.cache = cache
        self.columns = list(columns)
        self.planner = planner or BucketPlanner()
        self.label_column = label_column
        self.label_ids = label_ids

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        texts = {col: [row[col] for row in rows] for col in self.columns}
        ids = {col: self.cache.ids(t) for col, t in texts.items()}  # {column: (B,)}
        batch: dict[str, Any] = {"texts": texts, "features": self.planner(self.cache, ids)}
        if self.label_column is not None:
            labels = [row[self.label_column] for row in rows]
            label_ids = labels if self.label_ids is None else [self.label_ids[label] for label in labels]
            batch["labels"] = torch.tensor(label_ids, dtype=torch.long)  # (B,)
        return batch


def move_features(features: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move the tensors of a features dict to ``device`` (other values pass through)."""
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in features.items()}


def embed_batch(model, features: EncodePlan | dict[str, dict[str, Any]], device: torch.device) -> dict[str, Tensor]:
    """Encode a batch's ``features`` (an encode plan, or one padded chunk per column).  -> {column: (B, D)}"""
    if isinstance(features, EncodePlan):
        return encode_plan(model, features, device)
    return {col: model(move_features(feats, device))["sentence_embedding"] for col, feats in features.items()}


def split_embeddings(embeddings: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
    """(anchor (B, D), positive (B, D), negatives (B, K, D) or None) from per-column embeddings."""
    negs = negative_columns(list(embeddings))
    negatives = torch.stack([embeddings[c] for c in negs], dim=1) if negs else None  # (B, K, D)
    return embeddings["anchor"], embeddings["positive"], negatives
