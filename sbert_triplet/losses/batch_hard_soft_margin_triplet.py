"""Batch-hard triplet loss with a soft margin: softplus of the hardest gap, no margin to tune."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from sbert_triplet.losses.batch_hard_triplet import BatchHardTripletLoss
from sbert_triplet.similarity import Distance


class BatchHardSoftMarginTripletLoss(BatchHardTripletLoss):
    r"""Batch-hard triplet loss with ``log(1 + exp(gap))`` in place of the hinge; no margin.

    With ``A`` the anchors that have a positive and a negative in the batch and the distance
    ``d`` (``d = -s`` for a similarity):

    .. math::

        L = \frac{1}{|A|} \sum_{a \in A}
            \log\Big(1 + \exp\big(\max_{p} d(a, p) - \min_{n} d(a, n)\big)\Big)

    The soft margin keeps pulling positives in after the gap is negative (the loss only
    tends to 0), so there is no margin argument. A constant encoder costs ``log 2``.

    Inputs: ``embeddings (B, D)`` and integer ``labels (B,)`` (columns ``text`` and
    ``label``). Sampler: P x K (P labels, K >= 2 embeddings each). ``|A| = 0`` gives 0.0 with
    zero gradients and one warning per instance. After forward, :attr:`last_num_triplets`
    is ``|A|``.

    Same value as sentence-transformers' ``BatchHardSoftMarginTripletLoss`` (Euclidean
    distance) when every anchor has a positive and a negative; otherwise it differs on
    purpose exactly as :class:`~sbert_triplet.losses.batch_hard_triplet.BatchHardTripletLoss`
    (sentence-transformers also averages over anchors that have no triplet).

    Args:
        distance: ``"euclidean"`` (default), ``"squared_euclidean"``, ``"cosine"``, ``"dot"`` or
            a :class:`~sbert_triplet.similarity.Distance`.

    Raises:
        ConfigError (a ValueError): unknown distance.
        ValueError: in :meth:`forward`, embeddings not float (B, D) or labels not integer (B,).

    References:
        Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss for Person
        Re-Identification" (soft margin, batch hard).
    """

    uses_margin = False

    def __init__(self, distance: str | Distance = "euclidean") -> None:
        super().__init__(distance, margin=0.0)

    def per_anchor(self, gaps: Tensor) -> Tensor:
        """Soft margin: ``log(1 + exp(gap))`` of each anchor's hardest gap.  (A,) -> (A,)"""
        return F.softplus(gaps)  # (A,)
