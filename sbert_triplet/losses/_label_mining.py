"""Shared pieces of the label-based batch triplet losses: input checks, masks, mining, the base class.

Every batch loss takes ``embeddings (B, D)`` and integer ``labels (B,)``; a triplet
``(a, p, n)`` is *valid* when ``a != p``, ``labels[a] == labels[p]`` and
``labels[n] != labels[a]``. Values are compared "distance-like" (smaller = closer):
similarities (``distance.is_inverted``) are negated first, so mining reads the same for both.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from sbert_triplet.losses.triplet import check_margin_reachable, check_margin_value, oriented
from sbert_triplet.similarity import Distance, get_distance


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def check_embeddings_labels(embeddings: Tensor, labels: Tensor) -> None:
    """Raise ValueError unless ``embeddings`` is float (B, D), B >= 1, and ``labels`` integer (B,)."""
    if not isinstance(embeddings, Tensor):
        raise ValueError(f"embeddings must be a torch.Tensor, got {type(embeddings).__name__}")
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be a float tensor, got dtype {embeddings.dtype}")
    if embeddings.dim() != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"embeddings must have shape (B, D) with B >= 1, got {_shape(embeddings)}")
    if not isinstance(labels, Tensor):
        raise ValueError(f"labels must be a torch.Tensor of integer class ids, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class ids, got dtype {labels.dtype}")
    batch = embeddings.shape[0]
    if labels.shape != (batch,):
        raise ValueError(
            f"labels must have shape (B,) = ({batch},), one class id per embedding "
            f"{_shape(embeddings)}, got {_shape(labels)}"
        )


def label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(positive, negative)`` bool masks: same label and not itself / different label.  (B,) -> 2 x (B, B)"""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)  # (B, B)
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)  # (B, B)
    return same & ~eye, ~same  # (B, B), (B, B)


def hardest_gaps(values: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    """Batch-hard ``max_p v(a, p) - min_n v(a, n)`` for each anchor with a positive and a negative.

    ``values`` is distance-like (B, B); ``positive`` / ``negative`` are the masks of
    :func:`label_masks`. Anchors without a positive or without a negative are left out.
    Returns (A,), A = number of such anchors (may be 0).
    """
    anchors = (positive.any(dim=1) & negative.any(dim=1)).nonzero().squeeze(1)  # (A,)
    rows = values[anchors]  # (A, B)
    hardest_pos = rows.masked_fill(~positive[anchors], -torch.inf).max(dim=1).values  # (A,)
    hardest_neg = rows.masked_fill(~negative[anchors], torch.inf).min(dim=1).values  # (A,)
    return hardest_pos - hardest_neg  # (A,)


def zero_loss(x: Tensor) -> Tensor:
    """Exactly 0.0, connected to ``x``'s graph with zero gradients (a sum over no element)."""
    return x.reshape(-1)[:0].sum()  # ()


class LabelTripletLoss(nn.Module):
    """Base of the batch triplet losses: distance, margin, pairwise values, one warning on empty batches."""

    uses_margin = True

    def __init__(self, distance: str | Distance = "euclidean", margin: float = 0.5) -> None:
        super().__init__()
        self.distance: Distance = get_distance(distance)
        self.margin = check_margin_value(margin)
        self.last_num_triplets = 0
        self._warned = False
        self.check_margin(normalized=False)

    def check_margin(self, normalized: bool) -> None:
        """Raise ConfigError if ``margin >= distance.max_gap(normalized)`` (it can never be met)."""
        if self.uses_margin:
            check_margin_reachable(self.margin, self.distance, normalized)

    def pairwise_values(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Check inputs; return distance-like values of every pair.  (B, D) -> (B, B)"""
        check_embeddings_labels(embeddings, labels)
        return oriented(self.distance, self.distance.matrix(embeddings, embeddings))  # (B, B)

    def empty_batch(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Record 0 triplets, warn once per instance, return a zero loss with zero gradients."""
        self.last_num_triplets = 0
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{type(self).__name__}: the batch of {labels.shape[0]} labels "
                f"({labels.unique().numel()} distinct) has no valid triplet: it needs two "
                "embeddings of one label and one of another. The loss is 0.0 for such batches. "
                "Use a P x K sampler (P >= 2 labels, K >= 2 embeddings each). "
                "(Shown once per loss instance.)",
                stacklevel=3,
            )
        return zero_loss(embeddings)  # ()

    def extra_repr(self) -> str:
        margin = f", margin={self.margin}" if self.uses_margin else ""
        return f"distance={self.distance.name!r}{margin}"
