"""Triplet evaluation: how often the positive is closer to the anchor than a negative."""

from __future__ import annotations

import re
from typing import Any

import torch

from sbert_triplet.errors import DataSchemaError
from sbert_triplet.evaluation.sts import encode_unique
from sbert_triplet.similarity import Distance, get_distance

_NEGATIVE = re.compile(r"negative(?:_(\d+))?")


def negative_columns(column_names: list[str]) -> list[str]:
    """The hard-negative columns, by name: ``negative`` and ``negative_1 .. negative_k``
    (in numeric order, ``negative`` first)."""
    found = [(name, _NEGATIVE.fullmatch(name)) for name in column_names]
    matched = [(int(m.group(1) or 0), name) for name, m in found if m]
    return [name for _, name in sorted(matched)]


def triplet_columns(dataset: Any) -> list[str]:
    """The negative columns of a triplet set, after checking it has the columns it needs.

    Raises:
        DataSchemaError: ``anchor``, ``positive`` or every negative column is missing.
    """
    names = getattr(dataset, "column_names", None)
    columns = list(names) if names is not None else list(dataset.keys())
    negatives = negative_columns(columns)
    if "anchor" not in columns or "positive" not in columns or not negatives:
        raise DataSchemaError(
            f"triplet evaluation needs columns 'anchor', 'positive' and 'negative_1'.."
            f"'negative_k' (or 'negative'); got {columns}",
            source="triplet evaluation set",
        )
    return negatives


def _triplet_texts(dataset: Any) -> tuple[list[str], list[str], list[str]]:
    """Flatten rows into aligned (anchor, positive, negative) lists, one entry per triplet."""
    negatives = triplet_columns(dataset)
    anchors, positives = list(dataset["anchor"]), list(dataset["positive"])
    neg_lists = [list(dataset[c]) for c in negatives]
    a_out, p_out, n_out = [], [], []
    for i, (anchor, positive) in enumerate(zip(anchors, positives)):
        if anchor is None or positive is None:
            raise DataSchemaError(
                "anchor and positive must be texts, got None", source="triplet evaluation set", row=i
            )
        for negs in neg_lists:
            if negs[i] is not None:  # rows with fewer hard negatives are padded with None
                a_out.append(anchor)
                p_out.append(positive)
                n_out.append(negs[i])
    return a_out, p_out, n_out


def evaluate_triplets(
    model: Any, dataset: Any, distance: str | Distance = "cosine", batch_size: int = 32
) -> dict[str, float]:
    """Triplet accuracy: the fraction of (anchor, positive, negative_j) triplets with
    ``d(anchor, positive) < d(anchor, negative_j)`` strictly (a tie counts as wrong).

    Each row contributes one triplet per non-None negative column, so a row with three
    hard negatives weighs three times. Each distinct text is encoded once.

    Args:
        model: anything with a SentenceTransformer-like ``encode``.
        dataset: a ``datasets.Dataset`` or a dict of equal-length lists, with columns
            ``anchor``, ``positive`` and ``negative_1 .. negative_k`` (or ``negative``),
            chosen by name.
        distance: ``"cosine"`` (1 - cosine similarity, in [0, 2]), ``"euclidean"`` (L2), or
            a :class:`~sbert_triplet.similarity.Distance`; for a similarity (``"dot"``,
            ``is_inverted``) larger = closer.
        batch_size: encoding batch size.

    Returns:
        ``{"accuracy": float}`` in [0, 1].

    Raises:
        DataSchemaError: a required column is missing, or an anchor / positive is None.
        ValueError: the set holds no triplet. ConfigError: unknown distance name.
    """
    dist = get_distance(distance)
    anchors, positives, negatives = _triplet_texts(dataset)
    if not anchors:
        raise ValueError("the triplet evaluation set holds no (anchor, positive, negative) triplet")
    n = len(anchors)
    embeddings, rows = encode_unique(model, anchors + positives + negatives, batch_size)  # (U, D)
    embeddings = embeddings.double()  # (U, D)
    rows_t = torch.as_tensor(rows, device=embeddings.device)  # (3T,)
    a, p, neg = (embeddings[rows_t[i * n : (i + 1) * n]] for i in range(3))  # (T, D) each
    d_pos, d_neg = dist.pairwise(a, p), dist.pairwise(a, neg)  # (T,), (T,)
    # distances: closer = smaller; similarities (is_inverted, e.g. dot): closer = larger
    correct = d_pos > d_neg if getattr(dist, "is_inverted", False) else d_pos < d_neg  # (T,) bool
    return {"accuracy": float(correct.double().mean().item())}
