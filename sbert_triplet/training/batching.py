"""Turning canonical rows into model inputs and embeddings.

A batch is a dict ``{column: list[str]}`` over the canonical columns ``anchor``,
``positive``, ``negative_1..k``. Each column is tokenised with the encoder's own
tokenizer (``SentenceTransformer.preprocess``) and encoded in one forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def negative_columns(column_names: list[str]) -> list[str]:
    """The ``negative_<n>`` columns in numeric order."""
    negs = [c for c in column_names if c.startswith("negative_")]
    return sorted(negs, key=lambda c: int(c.split("_")[1]))


class RowCollator:
    """Collate dataset rows (dicts) into ``{column: features}`` for the encoder.

    Tokenisation happens here, so DataLoader workers can do it off the training thread.
    """

    def __init__(self, tokenize, columns: list[str]) -> None:
        self.tokenize = tokenize  # SentenceTransformer.preprocess: list[str] -> features dict
        self.columns = list(columns)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {col: self.tokenize([row[col] for row in rows]) for col in self.columns}


def move_features(features: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move the tensors of a features dict to ``device`` (other values pass through)."""
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in features.items()}


def embed_batch(model, batch: dict[str, dict[str, Any]], device: torch.device) -> dict[str, Tensor]:
    """Encode every column of a collated batch.  -> {column: (B, D)}"""
    return {col: model(move_features(feats, device))["sentence_embedding"] for col, feats in batch.items()}


def split_embeddings(embeddings: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
    """(anchor (B, D), positive (B, D), negatives (B, K, D) or None) from per-column embeddings."""
    negs = negative_columns(list(embeddings))
    negatives = torch.stack([embeddings[c] for c in negs], dim=1) if negs else None  # (B, K, D)
    return embeddings["anchor"], embeddings["positive"], negatives
