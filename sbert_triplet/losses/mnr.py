"""Multiple negatives ranking loss (InfoNCE with in-batch negatives and optional hard negatives)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.triplet import check_anchor_positive, negatives_as_3d
from sbert_triplet.similarity import cos_sim


class MultipleNegativesRankingLoss(nn.Module):
    r"""Cross-entropy over in-batch candidates: each anchor must rank its own positive first.

    For a batch of ``B`` anchors, ``B`` positives and ``K`` hard negatives per row, every
    anchor scores the same ``B * (1 + K)`` candidates: all ``B`` positives, then all
    ``B * K`` hard negatives flattened row-major (row 0's ``K`` negatives, then row 1's, ...).

    .. math::

        s_{ij} = \text{scale} \cdot \cos(a_i, c_j), \qquad
        L = -\frac{1}{B} \sum_{i=1}^{B} \log
            \frac{\exp(s_{ii})}{\sum_{j=1}^{B(1+K)} \exp(s_{ij})}

    Units: ``cos`` is cosine *similarity* in [-1, 1] (larger = closer; a zero vector scores
    0, never NaN); ``scale = 1 / temperature`` (``scale=20`` is ``temperature=0.05``).
    A constant encoder gives ``ln(B * (1 + K))``.

    Columns: ``anchor``, ``positive`` and optionally ``negative_1 .. negative_K``. The other
    rows' positives are the in-batch negatives, so duplicates inside a batch become false
    negatives: use a no-duplicates sampler. Bigger batches give more negatives (gradient
    accumulation alone does not; use gradient caching). Same value as
    sentence-transformers' ``MultipleNegativesRankingLoss`` with its defaults.

    Args:
        scale: multiplier of the cosine similarities, ``> 0``.

    Raises:
        ConfigError (a ValueError): ``scale`` not a finite number ``> 0``.
        ValueError: in :meth:`forward`, embeddings of the wrong shape (the message names them).

    References:
        Henderson et al. 2017, "Efficient Natural Language Response Suggestion for Smart
        Reply"; van den Oord, Li & Vinyals 2018, "Representation Learning with Contrastive
        Predictive Coding" (InfoNCE).
    """

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ConfigError(f"scale must be a finite number > 0 (scale = 1 / temperature), got {scale!r}")
        if scale <= 0:
            raise ConfigError(
                f"scale must be > 0 (scale = 1 / temperature), got {scale}; typical values are 20 to 50"
            )
        self.scale = float(scale)

    @property
    def temperature(self) -> float:
        """Softmax temperature, ``1 / scale``."""
        return 1.0 / self.scale

    def forward(self, anchor: Tensor, positive: Tensor, negatives: Tensor | None = None) -> Tensor:
        """Mean cross-entropy of each anchor against all positives and hard negatives of the batch.

        Args:
            anchor: (B, D) embeddings.
            positive: (B, D) embeddings, ``positive[i]`` pairs with ``anchor[i]``.
            negatives: None, (B, D) for one hard negative per row, or (B, K, D) with K >= 0.

        Returns:
            Scalar tensor, the mean over the ``B`` anchors.

        Raises:
            ValueError: shapes that do not fit together (the message names them).
        """
        check_anchor_positive(anchor, positive)
        batch, dim = anchor.shape
        candidates = positive  # (B, D)
        if negatives is not None:
            negatives = negatives_as_3d(anchor, negatives, name="negatives")  # (B, K, D)
            flat = negatives.reshape(-1, dim)  # (B*K, D), row 0's K negatives first
            candidates = torch.cat([positive, flat], dim=0)  # (B*(1+K), D)
        logits = self.scale * cos_sim(anchor, candidates)  # (B, B*(1+K))
        labels = torch.arange(batch, device=anchor.device)  # (B,)
        return F.cross_entropy(logits, labels)  # ()

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
