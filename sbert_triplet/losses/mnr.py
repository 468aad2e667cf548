"""Multiple negatives ranking loss (InfoNCE with in-batch and hard negatives), one- or two-directional."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.triplet import check_anchor_positive, negatives_as_3d
from sbert_triplet.similarity import cos_sim


class _DefaultScale(float):
    """The default ``scale`` (20.0); a distinct object so "scale and temperature both given" is detectable."""

    def __repr__(self) -> str:
        return float.__repr__(self)


_DEFAULT_SCALE = _DefaultScale(20.0)


def _positive_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number > 0 (scale = 1 / temperature), got {value!r}")
    if value <= 0:
        raise ConfigError(
            f"{name} must be > 0 (scale = 1 / temperature), got {value}; typical values are "
            "scale 20 to 50, i.e. temperature 0.05 to 0.02"
        )
    return float(value)


def _resolve_scale(scale, temperature) -> float:
    """Return the scale from ``scale`` or ``temperature`` (one of the two), raising ConfigError otherwise."""
    if temperature is None:
        return _positive_number(scale, "scale")
    if scale is not None and scale is not _DEFAULT_SCALE:
        raise ConfigError(
            f"give either scale or temperature, not both (got scale={scale!r}, temperature={temperature!r}); "
            "scale = 1 / temperature"
        )
    return 1.0 / _positive_number(temperature, "temperature")


def check_mask(mask, shape: tuple[int, int], name: str, what: str) -> Tensor:
    """Return ``mask`` as a bool tensor of ``shape`` whose diagonal is all True; else raise ValueError.

    ``mask[i, i]`` is row i's own positive (or own anchor), which can never be removed.
    """
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of bools, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must have dtype torch.bool (True = keep), got {mask.dtype}")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} ({what}), got {tuple(mask.shape)}")
    own = mask.diagonal()  # (B,)
    if not bool(own.all()):
        rows = (~own).nonzero().flatten()[:5].tolist()
        raise ValueError(
            f"{name}[i, i] must be True: row i's own positive/anchor is never masked; False in rows {rows}"
        )
    return mask


class MultipleNegativesRankingLoss(nn.Module):
    r"""Cross-entropy over in-batch candidates: each anchor must rank its own positive first.

    For a batch of ``B`` anchors, ``B`` positives and ``K`` hard negatives per row, every
    anchor scores the same ``B * (1 + K)`` candidates: all ``B`` positives, then all
    ``B * K`` hard negatives flattened row-major (row 0's ``K`` negatives, then row 1's, ...).
    ``M_i`` is the set of candidates row i keeps (all of them unless ``candidate_mask`` is given).

    .. math::

        s_{ij} = \text{scale} \cdot \cos(a_i, c_j), \qquad
        L_{\to} = -\frac{1}{B} \sum_{i=1}^{B} \log
            \frac{\exp(s_{ii})}{\sum_{j \in M_i} \exp(s_{ij})}

    With ``symmetric=True`` (sentence-transformers' ``MultipleNegativesSymmetricRankingLoss``)
    each positive must also rank its own anchor first among the ``B`` anchors (hard negatives
    take no part in this direction; ``N_i`` = anchors row i keeps, see ``anchor_mask``), and the
    loss is the mean of the two directions:

    .. math::

        t_{ij} = \text{scale} \cdot \cos(p_i, a_j), \qquad
        L_{\leftarrow} = -\frac{1}{B} \sum_{i=1}^{B} \log
            \frac{\exp(t_{ii})}{\sum_{j \in N_i} \exp(t_{ij})}, \qquad
        L = \tfrac{1}{2} (L_{\to} + L_{\leftarrow})

    Units: ``cos`` is cosine *similarity* in [-1, 1] (larger = closer; a zero vector scores
    0, never NaN); ``scale = 1 / temperature`` (``scale=20`` is ``temperature=0.05``).
    A constant encoder gives ``ln(B * (1 + K))`` (symmetric: the mean of that and ``ln B``).

    Columns: ``anchor``, ``positive`` and optionally ``negative_1 .. negative_K``. The other
    rows' positives are the in-batch negatives, so duplicates inside a batch become false
    negatives: use :class:`~sbert_triplet.data.samplers.NoDuplicatesBatchSampler`, or pass the
    masks from :func:`~sbert_triplet.losses.false_negatives.false_negative_masks`. Bigger
    batches give more negatives (gradient accumulation alone does not; use gradient caching).
    Without masks: same value as sentence-transformers' ``MultipleNegativesRankingLoss``
    (``symmetric=True``: ``MultipleNegativesSymmetricRankingLoss``) with the same scale.

    Args:
        scale: multiplier of the cosine similarities, ``> 0``; default 20.0.
        temperature: alternatively the softmax temperature, ``> 0``; ``scale = 1 / temperature``.
            Give ``scale`` or ``temperature``, not both.
        symmetric: also rank anchors for each positive (the backward direction) and average.

    Raises:
        ConfigError (a ValueError): ``scale`` / ``temperature`` not a finite number ``> 0``,
            both given, or ``symmetric`` not a bool.
        ValueError: in :meth:`forward`, embeddings or masks of the wrong shape or dtype, or a
            mask that removes a row's own positive / anchor (the message names them).

    References:
        Henderson et al. 2017, "Efficient Natural Language Response Suggestion for Smart
        Reply"; van den Oord, Li & Vinyals 2018, "Representation Learning with Contrastive
        Predictive Coding" (InfoNCE); symmetric: Yang et al. 2019, "Improving Multilingual
        Sentence Embedding using Bi-directional Dual Encoder with Additive Margin Softmax".
    """

    def __init__(self, scale: float = _DEFAULT_SCALE, temperature: float | None = None,
                 symmetric: bool = False) -> None:
        super().__init__()
        self.scale = _resolve_scale(scale, temperature)
        if not isinstance(symmetric, bool):
            raise ConfigError(f"symmetric must be True or False, got {symmetric!r}")
        self.symmetric = symmetric

    @property
    def temperature(self) -> float:
        """Softmax temperature, ``1 / scale``."""
        return 1.0 / self.scale

    def forward(self, anchor: Tensor, positive: Tensor, negatives: Tensor | None = None,
                candidate_mask: Tensor | None = None, anchor_mask: Tensor | None = None) -> Tensor:
        """Mean cross-entropy of each anchor against the kept positives and hard negatives of the batch.

        Args:
            anchor: (B, D) embeddings.
            positive: (B, D) embeddings, ``positive[i]`` pairs with ``anchor[i]``.
            negatives: None, (B, D) for one hard negative per row, or (B, K, D) with K >= 0.
            candidate_mask: None or bool (B, B*(1+K)), columns in candidate order (positives,
                then negatives row-major); False removes candidate j from row i's softmax
                (its logit becomes -inf). ``candidate_mask[i, i]`` must be True.
            anchor_mask: None or bool (B, B); False removes anchor j from row i's backward
                softmax. ``anchor_mask[i, i]`` must be True. Shape-checked but unused
                when ``symmetric=False`` (there is no backward direction).

        Returns:
            Scalar tensor, the mean over the ``B`` rows (symmetric: of both directions).

        Raises:
            ValueError: shapes that do not fit together, a mask that is not bool, or a mask
                with a False diagonal (the message names them).
        """
        check_anchor_positive(anchor, positive)
        batch = anchor.shape[0]
        logits = self.scale * cos_sim(anchor, self._candidates(anchor, positive, negatives))  # (B, B*(1+K))
        if candidate_mask is not None:
            keep = check_mask(candidate_mask, tuple(logits.shape), "candidate_mask", "B x B*(1+K) candidates")
            logits = logits.masked_fill(~keep.to(logits.device), float("-inf"))  # (B, B*(1+K))
        if anchor_mask is not None:
            anchor_mask = check_mask(anchor_mask, (batch, batch), "anchor_mask", "B positives x B anchors")
        labels = torch.arange(batch, device=anchor.device)  # (B,)
        loss = F.cross_entropy(logits, labels)  # ()
        if not self.symmetric:
            return loss
        back = self.scale * cos_sim(positive, anchor)  # (B, B): row i = positive i against every anchor
        if anchor_mask is not None:
            back = back.masked_fill(~anchor_mask.to(back.device), float("-inf"))  # (B, B)
        return (loss + F.cross_entropy(back, labels)) / 2  # ()

    @staticmethod
    def _candidates(anchor: Tensor, positive: Tensor, negatives: Tensor | None) -> Tensor:
        """All positives, then all hard negatives row-major.  -> (B*(1+K), D)"""
        if negatives is None:
            return positive  # (B, D)
        negatives = negatives_as_3d(anchor, negatives, name="negatives")  # (B, K, D)
        flat = negatives.reshape(-1, anchor.shape[1])  # (B*K, D), row 0's K negatives first
        return torch.cat([positive, flat], dim=0)  # (B*(1+K), D)

    def extra_repr(self) -> str:
        return f"scale={self.scale}" + (", symmetric=True" if self.symmetric else "")


class MultipleNegativesSymmetricRankingLoss(MultipleNegativesRankingLoss):
    """MNR with ``symmetric=True``: rank positives for each anchor and anchors for each positive.

    The loss is the mean of the two cross-entropies (see the parent's formula); hard negatives
    are candidates only in the anchor -> positive direction. Registered as ``"mnr-symmetric"``.
    Same value as sentence-transformers' ``MultipleNegativesSymmetricRankingLoss`` (without masks).

    Args:
        scale: multiplier of the cosine similarities, ``> 0``; default 20.0.
        temperature: alternatively ``1 / scale``; give one of the two.

    Raises:
        ConfigError (a ValueError): as the parent.
    """

    def __init__(self, scale: float = _DEFAULT_SCALE, temperature: float | None = None) -> None:
        super().__init__(scale=scale, temperature=temperature, symmetric=True)
