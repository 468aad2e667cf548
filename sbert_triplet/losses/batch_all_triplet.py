"""Batch-all triplet loss: every valid (anchor, positive, negative) triplet of a labelled batch."""

from __future__ import annotations

import torch
from torch import Tensor

from sbert_triplet.losses._label_mining import LabelTripletLoss, label_masks
from sbert_triplet.similarity import Distance


class BatchAllTripletLoss(LabelTripletLoss):
    r"""Triplet loss over all valid triplets of a batch, averaged over the active ones.

    With ``T = {(a, p, n): a != p, y_a = y_p, y_n != y_a}`` (``y`` = labels) and the
    distance ``d`` (for a similarity ``s``, ``d = -s``):

    .. math::

        \ell_{apn} = \max\big(d(a, p) - d(a, n) + \text{margin},\ 0\big), \qquad
        L = \frac{\sum_{T} \ell_{apn}}{|\{(a, p, n) \in T: \ell_{apn} > 0\}|}

    and ``L = 0`` when no triplet is active. Inputs: ``embeddings (B, D)`` and integer
    ``labels (B,)`` (one class id per embedding: columns ``text`` and ``label``). Sampler:
    P x K (P labels, K >= 2 embeddings each); a batch without two embeddings of one label
    and one of another has no valid triplet and gives 0.0 with zero gradients and one
    warning per instance. After forward, :attr:`last_num_triplets` is ``|T|`` and
    :attr:`last_num_active` the denominator.

    Same value as sentence-transformers' ``BatchAllTripletLoss`` (Euclidean distance), except:
    it counts a triplet as active when its loss is ``> 1e-16`` (we: ``> 0``, as
    pytorch-metric-learning's ``AvgNonZeroReducer`` and :class:`TripletLoss`'s
    ``"mean_active"``), which only matters when some loss lies in (0, 1e-16]; its default
    margin is 5 (ours 0.5, as :class:`TripletLoss`; unit-normalised L2 distances are <= 2).

    Args:
        distance: ``"euclidean"`` (default), ``"squared_euclidean"``, ``"cosine"``, ``"dot"`` or
            a :class:`~sbert_triplet.similarity.Distance`.
        margin: required gap ``d(a, n) - d(a, p)``, ``>= 0`` and below ``distance.max_gap()``.

    Raises:
        ConfigError (a ValueError): unknown distance; invalid or unreachable margin.
        ValueError: in :meth:`forward`, embeddings not float (B, D) or labels not integer (B,).

    References:
        Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss for Person
        Re-Identification" (batch all).
    """

    def __init__(self, distance: str | Distance = "euclidean", margin: float = 0.5) -> None:
        super().__init__(distance, margin)
        self.last_num_active = 0

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Loss over the valid triplets of ``embeddings (B, D)`` with ``labels (B,)``; scalar."""
        values = self.pairwise_values(embeddings, labels)  # (B, B)
        positive, negative = label_masks(labels)  # (B, B), (B, B)
        anchor_idx, positive_idx = positive.nonzero(as_tuple=True)  # (P,), (P,)
        ap = values[anchor_idx, positive_idx].unsqueeze(1)  # (P, 1)
        an = values[anchor_idx]  # (P, B): column n is d(a, n)
        losses = torch.relu(ap - an + self.margin)[negative[anchor_idx]]  # (T,)
        if losses.numel() == 0:
            self.last_num_active = 0
            return self.empty_batch(embeddings, labels)  # ()
        self.last_num_triplets = losses.numel()
        num_active = int((losses > 0).sum())
        self.last_num_active = num_active
        # No active triplet: every loss is exactly 0, so this is 0.0 with zero gradients.
        return losses.sum() / max(num_active, 1)  # ()
