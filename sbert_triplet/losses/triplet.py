"""Triplet margin loss on embeddings (FaceNet / Sentence-BERT triplet objective)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sbert_triplet.errors import ConfigError
from sbert_triplet.similarity import Distance, get_distance


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def check_anchor_positive(anchor: Tensor, positive: Tensor) -> None:
    """Raise ValueError unless ``anchor`` and ``positive`` are float tensors of one shape (B, D), B >= 1."""
    for name, x in (("anchor", anchor), ("positive", positive)):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of embeddings, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a float tensor, got dtype {x.dtype}")
    if anchor.dim() != 2:
        raise ValueError(
            f"anchor must have shape (B, D), got {_shape(anchor)}; "
            "pass a batch of embeddings (use x.unsqueeze(0) for a single one)"
        )
    if anchor.shape[0] == 0:
        raise ValueError(f"anchor is an empty batch, shape {_shape(anchor)}; the loss needs B >= 1 rows")
    if positive.shape != anchor.shape:
        raise ValueError(
            f"positive must have the anchor's shape {_shape(anchor)} (one positive per anchor), "
            f"got {_shape(positive)}"
        )


def negatives_as_3d(anchor: Tensor, negative: Tensor, name: str = "negative") -> Tensor:
    """Return ``negative`` as (B, K, D): (B, D) becomes K = 1. Raise ValueError naming the shapes."""
    if not isinstance(negative, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of embeddings, got {type(negative).__name__}")
    if negative.dim() == 2:
        negative = negative.unsqueeze(1)  # (B, 1, D)
    batch, dim = anchor.shape
    if negative.dim() != 3 or negative.shape[0] != batch or negative.shape[2] != dim:
        raise ValueError(
            f"{name} must have shape (B, D) = ({batch}, {dim}) or (B, K, D) = ({batch}, K, {dim}) "
            f"to match anchor {_shape(anchor)}, got {_shape(negative)}"
        )
    if not negative.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got dtype {negative.dtype}")
    return negative


class TripletLoss(nn.Module):
    r"""Triplet margin loss: the negative must be ``margin`` further from the anchor than the positive.

    .. math::

        L = \frac{1}{B K} \sum_{i=1}^{B} \sum_{k=1}^{K}
            \max\big(d(a_i, p_i) - d(a_i, n_{ik}) + \text{margin},\ 0\big)

    Units: ``d`` is a *distance* (smaller = closer), not a similarity, and ``margin`` is in
    the same units. ``"euclidean"``: ``||x - y||_2`` in [0, inf) ([0, 2] for unit-normalised
    embeddings); ``"cosine"``: ``1 - cos(x, y)`` in [0, 2].

    Columns: ``anchor``, ``positive`` and one or more ``negative_1 .. negative_K``. Each
    ``(a_i, p_i, n_ik)`` is one triplet; the mean is over all ``B * K`` triplets. Works
    with any sampler; mined hard negatives give the most signal.

    Args:
        distance: ``"euclidean"``, ``"cosine"`` or a :class:`~sbert_triplet.similarity.Distance`.
        margin: required gap between the negative and the positive distance, ``>= 0`` and
            below the distance's largest value.

    Raises:
        ConfigError (a ValueError): unknown distance name; negative or non-finite margin;
            a margin that can never be met (``margin >= distance.max_value()``, e.g.
            ``>= 2`` for cosine distance), see also :meth:`check_margin`.
        ValueError: in :meth:`forward`, embeddings of the wrong shape.

    References:
        Schroff, Kalenichenko & Philbin 2015, "FaceNet: A Unified Embedding for Face
        Recognition and Clustering"; Reimers & Gurevych 2019, "Sentence-BERT".
    """

    def __init__(self, distance: str | Distance = "euclidean", margin: float = 0.5) -> None:
        super().__init__()
        self.distance: Distance = get_distance(distance)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
            raise ConfigError(f"margin must be a finite number >= 0, got {margin!r}")
        if margin < 0:
            raise ConfigError(
                f"margin must be >= 0, got {margin}; a negative margin rewards negatives "
                "closer than positives. Use e.g. margin=0.5"
            )
        self.margin = float(margin)
        self.check_margin(normalized=False)

    def check_margin(self, normalized: bool) -> None:
        """Raise ConfigError (a ValueError) if ``margin`` can never be met by this distance.

        ``d(a, n) - d(a, p)`` is at most ``distance.max_value(normalized)``, so a margin at
        or above that value can never be met (at best exactly, at the extreme). Call with
        ``normalized=True`` when embeddings are unit-normalised (the model ends in a
        ``Normalize`` layer): Euclidean distance is then bounded by 2 as well.
        """
        bound = self.distance.max_value(normalized=normalized)
        if self.margin >= bound:
            units = "unit-normalised embeddings" if normalized else "any embeddings"
            raise ConfigError(
                f"margin {self.margin} can never be met with {self.distance.name} distance: "
                f"on {units} d(a, n) - d(a, p) is at most {bound}, so no triplet can reach "
                f"zero loss with room to spare. Choose a margin below {bound} (e.g. 0.5)"
            )

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        """Mean triplet loss.

        Args:
            anchor: (B, D) embeddings.
            positive: (B, D) embeddings, ``positive[i]`` pairs with ``anchor[i]``.
            negative: (B, D) or (B, K, D) embeddings, ``negative[i, k]`` for ``anchor[i]``.

        Returns:
            Scalar tensor, the mean over the ``B * K`` triplets.

        Raises:
            ValueError: shapes that do not fit together (the message names them), K = 0.
        """
        check_anchor_positive(anchor, positive)
        negative = negatives_as_3d(anchor, negative)  # (B, K, D)
        batch, num_neg, dim = negative.shape
        if num_neg == 0:
            raise ValueError(
                f"negative has K = 0 columns, shape {_shape(negative)}; the triplet loss needs K >= 1"
            )
        d_pos = self.distance.pairwise(anchor, positive)  # (B,)
        anchor_rep = anchor.unsqueeze(1).expand(batch, num_neg, dim)  # (B, K, D)
        d_neg = self.distance.pairwise(
            anchor_rep.reshape(batch * num_neg, dim),  # (B*K, D)
            negative.reshape(batch * num_neg, dim),  # (B*K, D)
        ).view(batch, num_neg)  # (B, K)
        losses = torch.relu(d_pos.unsqueeze(1) - d_neg + self.margin)  # (B, K)
        return losses.mean()  # ()

    def extra_repr(self) -> str:
        return f"distance={self.distance.name!r}, margin={self.margin}"
