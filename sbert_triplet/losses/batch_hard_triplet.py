"""Batch-hard triplet loss: each anchor with its hardest positive and hardest negative."""

from __future__ import annotations

import torch
from torch import Tensor

from sbert_triplet.losses._label_mining import LabelTripletLoss, hardest_gaps, label_masks


class BatchHardTripletLoss(LabelTripletLoss):
    r"""Triplet loss of each anchor with its farthest positive and its closest negative.

    With ``A`` the anchors that have at least one positive (same label, not itself) and one
    negative (other label) in the batch, and the distance ``d`` (``d = -s`` for a similarity):

    .. math::

        L = \frac{1}{|A|} \sum_{a \in A}
            \max\big(\max_{p: y_p = y_a, p \ne a} d(a, p) - \min_{n: y_n \ne y_a} d(a, n)
            + \text{margin},\ 0\big)

    Inputs: ``embeddings (B, D)`` and integer ``labels (B,)`` (columns ``text`` and
    ``label``). Sampler: P x K (P labels, K >= 2 embeddings each), which puts every anchor in
    ``A``. ``|A| = 0`` gives 0.0 with zero gradients and one warning per instance. After
    forward, :attr:`last_num_triplets` is ``|A|``.

    Same value as sentence-transformers' ``BatchHardTripletLoss`` (Euclidean distance) when
    every anchor has a positive and a negative (P x K batches). Otherwise it differs on
    purpose: sentence-transformers averages over *all* B anchors, taking ``d(a, p) = 0``
    (the anchor itself) for an anchor without a positive and the row's largest distance for
    one without a negative, so a label seen once still pushes its nearest negatives away and a
    one-label batch costs ``margin``; here such anchors are left out (no triplet exists).
    Its default margin is 5 (ours 0.5).

    Args:
        distance: ``"euclidean"`` (default), ``"squared_euclidean"``, ``"cosine"``, ``"dot"`` or
            a :class:`~sbert_triplet.similarity.Distance`.
        margin: required gap, ``>= 0`` and below ``distance.max_gap()``.

    Raises:
        ConfigError (a ValueError): unknown distance; invalid or unreachable margin.
        ValueError: in :meth:`forward`, embeddings not float (B, D) or labels not integer (B,).

    References:
        Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss for Person
        Re-Identification" (batch hard).
    """

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Mean batch-hard loss over the anchors of ``embeddings (B, D)`` with ``labels (B,)``; scalar."""
        values = self.pairwise_values(embeddings, labels)  # (B, B)
        gaps = hardest_gaps(values, *label_masks(labels))  # (A,)
        if gaps.numel() == 0:
            return self.empty_batch(embeddings, labels)  # ()
        self.last_num_triplets = gaps.numel()
        return self.per_anchor(gaps).mean()  # ()

    def per_anchor(self, gaps: Tensor) -> Tensor:
        """Loss of each anchor's hardest gap: the hinge ``max(gap + margin, 0)``.  (A,) -> (A,)"""
        return torch.relu(gaps + self.margin)  # (A,)
