"""STS evaluation: correlation of cosine similarity with gold similarity scores.

Also home of :func:`encode_unique`, the one place the evaluators call ``model.encode``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sbert_triplet.data.types import ScoredPairs
from sbert_triplet.similarity import pairwise_cos_sim


def encode_unique(
    model: Any, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
) -> tuple[Tensor, list[int]]:
    """Encode each distinct text once.

    ``model`` is anything with a SentenceTransformer-like
    ``encode(texts, batch_size=..., convert_to_tensor=True, show_progress_bar=...)``.
    ``SentenceTransformer.encode`` switches the model to eval mode (dropout off) and leaves
    it there; this restores the previous train/eval mode afterwards, so an evaluation in
    the middle of training does not silently turn dropout off for the rest of it.

    Returns:
        ``embeddings (U, D)`` for the U distinct texts (first-seen order) and, for each
        input text, its row in ``embeddings`` (so ``embeddings[rows]`` is ``(len(texts), D)``).

    Raises:
        ValueError: ``texts`` is empty, or the encoder does not return one row per text.
    """
    if len(texts) == 0:
        raise ValueError("nothing to encode: the list of texts is empty")
    unique = list(dict.fromkeys(texts))
    row_of = {text: i for i, text in enumerate(unique)}
    was_training = getattr(model, "training", None)
    try:
        out = model.encode(
            unique, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=show_progress_bar
        )
    finally:
        if was_training is not None and hasattr(model, "train"):
            model.train(was_training)
    if isinstance(out, (list, tuple)):
        out = torch.stack([torch.as_tensor(row) for row in out])  # (U, D)
    embeddings = torch.as_tensor(out)  # (U, D)
    if embeddings.dim() != 2 or embeddings.shape[0] != len(unique):
        raise ValueError(
            f"the encoder returned shape {tuple(embeddings.shape)} for {len(unique)} texts; "
            "expected (n_texts, dim)"
        )
    return embeddings, [row_of[text] for text in texts]


def evaluate_sts(model: Any, pairs: ScoredPairs, batch_size: int = 32) -> dict[str, float]:
    """Spearman and Pearson correlation between cosine similarity and the gold scores.

    Cosine similarity (in [-1, 1]) of each pair's embeddings is correlated with the gold
    score (any scale, e.g. STS-B 0-5); each distinct sentence is encoded once. Correlations
    are in [-1, 1]; they are NaN (with a scipy warning) when all predicted similarities
    are equal. Source: ``scipy.stats.spearmanr`` / ``pearsonr``; the metric names follow
    sentence-transformers' EmbeddingSimilarityEvaluator.

    Returns:
        ``{"spearman_cosine": float, "pearson_cosine": float}``.

    Raises:
        ValueError: fewer than 2 pairs, a gold score that is not a finite number, or all
            gold scores equal (a correlation is then undefined).
    """
    if len(pairs) < 2:
        raise ValueError(
            f"STS set {pairs.name!r} has {len(pairs)} pair(s); a correlation needs at least 2"
        )
    gold = [float(s) for s in pairs.scores]
    if not all(math.isfinite(s) for s in gold):
        raise ValueError(f"STS set {pairs.name!r} has a gold score that is NaN or infinite")
    if len(set(gold)) < 2:
        raise ValueError(
            f"STS set {pairs.name!r}: all gold scores are equal, so the correlation is undefined"
        )
    from scipy.stats import pearsonr, spearmanr  # lazy: scipy.stats is slow to import

    n = len(pairs)
    texts = list(pairs.sentence1) + list(pairs.sentence2)
    embeddings, rows = encode_unique(model, texts, batch_size=batch_size)  # (U, D)
    embeddings = embeddings.double()  # (U, D)
    rows_t = torch.as_tensor(rows, device=embeddings.device)  # (2n,)
    first, second = embeddings[rows_t[:n]], embeddings[rows_t[n:]]  # (n, D) each
    predicted = pairwise_cos_sim(first, second).cpu().tolist()  # n cosine similarities
    return {
        "spearman_cosine": float(spearmanr(predicted, gold).statistic),
        "pearson_cosine": float(pearsonr(predicted, gold).statistic),
    }
