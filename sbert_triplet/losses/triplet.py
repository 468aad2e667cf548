"""Triplet margin loss on embeddings (FaceNet / Sentence-BERT), with soft margin, swap and reductions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


REDUCTIONS = ("mean", "mean_active")


def check_margin_value(margin: float) -> float:
    """Return ``margin`` as a float; raise ConfigError unless it is a finite number ``>= 0``."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
        raise ConfigError(f"margin must be a finite number >= 0, got {margin!r}")
    if margin < 0:
        raise ConfigError(
            f"margin must be >= 0, got {margin}; a negative margin rewards negatives "
            "closer than positives. Use e.g. margin=0.5"
        )
    return float(margin)


def check_margin_reachable(margin: float, distance: Distance, normalized: bool) -> None:
    """Raise ConfigError (a ValueError) if ``margin >= distance.max_gap(normalized)``.

    The gap between the negative's and the positive's value (``d(a, n) - d(a, p)`` for a
    distance, ``s(a, p) - s(a, n)`` for a similarity) is at most ``max_gap``, so a margin
    at or above it can never be met (at best exactly, at the extreme).
    """
    bound = distance.max_gap(normalized=normalized)
    if margin >= bound:
        units = "unit-normalised embeddings" if normalized else "any embeddings"
        gap = "s(a, p) - s(a, n)" if distance.is_inverted else "d(a, n) - d(a, p)"
        raise ConfigError(
            f"margin {margin} can never be met with {distance.name} distance: "
            f"on {units} {gap} is at most {bound}, so no triplet can reach "
            f"zero loss with room to spare. Choose a margin below {bound} (e.g. 0.5)"
        )


def check_flag(name: str, value: bool) -> bool:
    """Return ``value``; raise ConfigError unless it is a bool."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value


def oriented(distance: Distance, values: Tensor) -> Tensor:
    """Map values to "distance-like" (smaller = closer): similarities are negated.  (...) -> (...)"""
    return -values if distance.is_inverted else values


class TripletLoss(nn.Module):
    r"""Triplet margin loss: the negative must be ``margin`` further from the anchor than the positive.

    With the *gap* of a triplet ``g = d(a, p) - d(a, n)`` for a distance, or
    ``g = s(a, n) - s(a, p)`` for a similarity (``distance.is_inverted``, e.g. ``"dot"``):

    .. math::

        \ell_{ik} = \max(g_{ik} + \text{margin},\ 0) \quad \text{(hard margin, default)}, \qquad
        \ell_{ik} = \log(1 + e^{g_{ik}}) \quad \text{(soft\_margin=True)}

        L = \frac{1}{B K} \sum_{i=1}^{B} \sum_{k=1}^{K} \ell_{ik} \ \text{("mean")}, \qquad
        L = \frac{\sum \ell_{ik}}{|\{\ell_{ik} > 0\}|} \ \text{("mean\_active"; 0 if none)}

    With ``swap=True`` (Balntas et al. 2016) the negative's value is the harder of
    ``d(a, n)`` and ``d(p, n)`` (the smaller distance, or the larger similarity).

    Units: ``margin`` is in the units of the distance. ``"euclidean"``: ``||x - y||_2`` in
    [0, inf) ([0, 2] unit-normalised); ``"squared_euclidean"``: ``||x - y||^2`` in [0, inf)
    ([0, 4]); ``"cosine"``: ``1 - cos(x, y)`` in [0, 2]; ``"dot"``: ``x . y``, a similarity.
    The soft margin (Hermans et al. 2017) has no margin: ``margin`` must stay at its default
    0.5 and is ignored (any other value raises ConfigError rather than being silently dropped).

    Columns: ``anchor``, ``positive`` and one or more ``negative_1 .. negative_K``. Each
    ``(a_i, p_i, n_ik)`` is one triplet. Works with any sampler; mined hard negatives give
    the most signal. ``"mean_active"`` divides by the number of triplets with loss > 0 (as
    pytorch-metric-learning's ``AvgNonZeroReducer``), so easy triplets do not dilute the
    gradient; with none active it returns exactly 0.0 with zero gradients. After each
    forward, :attr:`last_num_active` is the number of triplets with loss > 0.

    Args:
        distance: a name (``"euclidean"``, ``"squared_euclidean"``, ``"cosine"``, ``"dot"``) or
            a :class:`~sbert_triplet.similarity.Distance`.
        margin: required gap, ``>= 0`` and below ``distance.max_gap()``; unused with soft margin.
        soft_margin: use ``softplus(gap)`` instead of the hinge.
        swap: use the harder of the anchor-negative and positive-negative values.
        reduction: ``"mean"`` (over all ``B * K`` triplets) or ``"mean_active"``.

    Raises:
        ConfigError (a ValueError): unknown distance name or reduction; ``soft_margin`` /
            ``swap`` not a bool; negative or non-finite margin; a margin that can never be met
            (``margin >= distance.max_gap()``, e.g. ``>= 2`` for cosine distance), see
            :meth:`check_margin`; ``soft_margin=True`` with a margin other than 0.5.
        ValueError: in :meth:`forward`, embeddings of the wrong shape.

    References:
        Schroff, Kalenichenko & Philbin 2015, "FaceNet: A Unified Embedding for Face
        Recognition and Clustering"; Reimers & Gurevych 2019, "Sentence-BERT"; Hermans, Beyer
        & Leibe 2017, "In Defense of the Triplet Loss for Person Re-Identification" (soft
        margin); Balntas, Riba, Ponsa & Mikolajczyk 2016, "Learning local feature descriptors
        with triplets and shallow convolutional neural networks" (swap).
    """

    def __init__(
        self,
        distance: str | Distance = "euclidean",
        margin: float = 0.5,
        soft_margin: bool = False,
        swap: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.distance: Distance = get_distance(distance)
        self.margin = check_margin_value(margin)
        self.soft_margin = check_flag("soft_margin", soft_margin)
        self.swap = check_flag("swap", swap)
        if reduction not in REDUCTIONS:
            raise ConfigError(f"unknown reduction {reduction!r}; choose one of {list(REDUCTIONS)}")
        self.reduction = reduction
        if self.soft_margin and self.margin != 0.5:
            raise ConfigError(
                f"soft_margin=True has no margin (loss = log(1 + exp(gap))), got margin={margin}; "
                "leave margin at its default or use soft_margin=False"
            )
        self._num_active: Tensor | None = None
        self.check_margin(normalized=False)

    @property
    def last_num_active(self) -> int:
        """Number of triplets with loss > 0 in the last forward (0 before any forward)."""
        return 0 if self._num_active is None else int(self._num_active)

    def check_margin(self, normalized: bool) -> None:
        """Raise ConfigError (a ValueError) if ``margin`` can never be met by this distance.

        ``d(a, n) - d(a, p)`` (or ``s(a, p) - s(a, n)``) is at most
        ``distance.max_gap(normalized)``, so a margin at or above it can never be met. Call
        with ``normalized=True`` when embeddings are unit-normalised (the model ends in a
        ``Normalize`` layer): Euclidean distance is then bounded by 2 as well. Does nothing
        with ``soft_margin=True`` (no margin).
        """
        if not self.soft_margin:
            check_margin_reachable(self.margin, self.distance, normalized)

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        """Triplet loss reduced by :attr:`reduction`.

        Args:
            anchor: (B, D) embeddings.
            positive: (B, D) embeddings, ``positive[i]`` pairs with ``anchor[i]``.
            negative: (B, D) or (B, K, D) embeddings, ``negative[i, k]`` for ``anchor[i]``.

        Returns:
            Scalar tensor: the mean over the ``B * K`` triplets, or over the active ones.

        Raises:
            ValueError: shapes that do not fit together (the message names them), K = 0.
        """
        check_anchor_positive(anchor, positive)
        negative = negatives_as_3d(anchor, negative)  # (B, K, D)
        if negative.shape[1] == 0:
            raise ValueError(
                f"negative has K = 0 columns, shape {_shape(negative)}; the triplet loss needs K >= 1"
            )
        gap = self._gaps(anchor, positive, negative)  # (B, K)
        losses = F.softplus(gap) if self.soft_margin else torch.relu(gap + self.margin)  # (B, K)
        num_active = (losses > 0).sum()  # ()
        self._num_active = num_active.detach()
        if self.reduction == "mean":
            return losses.mean()  # ()
        # No active triplet: every loss is exactly 0, so this is 0.0 with zero gradients.
        return losses.sum() / num_active.clamp_min(1)  # ()

    def _gaps(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        """Oriented ``value(a, p) - value(a, n)`` (distance-like, swap applied).  -> (B, K)"""
        batch, num_neg, dim = negative.shape
        flat_neg = negative.reshape(batch * num_neg, dim)  # (B*K, D)

        def per_negative(x: Tensor) -> Tensor:
            rep = x.unsqueeze(1).expand(batch, num_neg, dim).reshape(batch * num_neg, dim)  # (B*K, D)
            values = self.distance.pairwise(rep, flat_neg).view(batch, num_neg)  # (B, K)
            return oriented(self.distance, values)  # (B, K)

        pos = oriented(self.distance, self.distance.pairwise(anchor, positive))  # (B,)
        neg = per_negative(anchor)  # (B, K)
        if self.swap:
            neg = torch.minimum(neg, per_negative(positive))  # (B, K)
        return pos.unsqueeze(1) - neg  # (B, K)

    def extra_repr(self) -> str:
        margin = "soft_margin=True" if self.soft_margin else f"margin={self.margin}"
        return f"distance={self.distance.name!r}, {margin}, swap={self.swap}, reduction={self.reduction!r}"
