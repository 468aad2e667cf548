"""Batch semi-hard triplet loss: each positive pair with its closest negative beyond the positive."""

from __future__ import annotations

import torch
from torch import Tensor

from sbert_triplet.losses._label_mining import LabelTripletLoss, label_masks


def semi_hard_negatives(ap: Tensor, an: Tensor, negative: Tensor) -> Tensor:
    """For each pair, the smallest ``d(a, n) > d(a, p)``; if none, the largest ``d(a, n)``.

    ``ap`` (P,) anchor-positive values, ``an`` (P, B) anchor-to-all values, ``negative``
    (P, B) bool mask of valid negatives (at least one per row). Returns (P,).
    """
    beyond = negative & (an > ap.unsqueeze(1))  # (P, B)
    semi_hard = an.masked_fill(~beyond, torch.inf).min(dim=1).values  # (P,)
    farthest = an.masked_fill(~negative, -torch.inf).max(dim=1).values  # (P,)
    return torch.where(beyond.any(dim=1), semi_hard, farthest)  # (P,)


class BatchSemiHardTripletLoss(LabelTripletLoss):
    r"""Triplet loss of each positive pair with its semi-hard negative (FaceNet's online mining).

    For each positive pair ``(a, p)`` (``a != p``, same label) whose anchor has a negative,
    the negative is the closest one *farther* than the positive,
    ``n* = argmin {d(a, n) : y_n != y_a, d(a, n) > d(a, p)}``, or, when every negative is
    closer than the positive, the farthest negative ``argmax {d(a, n) : y_n != y_a}``
    (distance ``d``; ``d = -s`` for a similarity). With ``P`` those pairs:

    .. math::

        L = \frac{1}{|P|} \sum_{(a, p) \in P} \max\big(d(a, p) - d(a, n^*) + \text{margin},\ 0\big)

    The mean is over all pairs in ``P``, easy ones (loss 0) included. Inputs:
    ``embeddings (B, D)`` and integer ``labels (B,)`` (columns ``text`` and ``label``).
    Sampler: P x K (P labels, K >= 2 embeddings each). ``|P| = 0`` gives 0.0 with zero
    gradients and one warning per instance. After forward, :attr:`last_num_triplets` is ``|P|``.

    Same value as sentence-transformers' ``BatchSemiHardTripletLoss`` (Euclidean distance;
    a port of TensorFlow Addons' ``triplet_semihard_loss``) whenever every label in the batch
    has a negative. Differs on purpose for an anchor with positives but no negative (a
    one-label batch): sentence-transformers then uses ``d(a, n*) = 0`` (the anchor itself),
    costing ``d(a, p) + margin`` per pair; here such pairs form no triplet and are left out.
    Its default margin is 5 (ours 0.5).

    Args:
        distance: ``"euclidean"`` (default), ``"squared_euclidean"``, ``"cosine"``, ``"dot"`` or
            a :class:`~sbert_triplet.similarity.Distance`.
        margin: required gap, ``>= 0`` and below ``distance.max_gap()``.

    Raises:
        ConfigError (a ValueError): unknown distance; invalid or unreachable margin.
        ValueError: in :meth:`forward`, embeddings not float (B, D) or labels not integer (B,).

    References:
        Schroff, Kalenichenko & Philbin 2015, "FaceNet: A Unified Embedding for Face
        Recognition and Clustering" (semi-hard negatives).
    """

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Mean semi-hard loss over the positive pairs of ``embeddings (B, D)``, ``labels (B,)``; scalar."""
        values = self.pairwise_values(embeddings, labels)  # (B, B)
        positive, negative = label_masks(labels)  # (B, B), (B, B)
        pairs = positive & negative.any(dim=1, keepdim=True)  # (B, B)
        anchor_idx, positive_idx = pairs.nonzero(as_tuple=True)  # (P,), (P,)
        if anchor_idx.numel() == 0:
            return self.empty_batch(embeddings, labels)  # ()
        self.last_num_triplets = anchor_idx.numel()
        ap = values[anchor_idx, positive_idx]  # (P,)
        an = semi_hard_negatives(ap, values[anchor_idx], negative[anchor_idx])  # (P,)
        return torch.relu(ap - an + self.margin).mean()  # ()
