"""Losses on embeddings: each takes ``anchor (B, D)``, ``positive (B, D)``, negatives, never a model.

- ``"triplet"``: :class:`TripletLoss` (distance, margin), FaceNet / Sentence-BERT.
- ``"mnr"``: :class:`MultipleNegativesRankingLoss` (scale = 1 / temperature), InfoNCE.
- ``"mnr-symmetric"``: :class:`MultipleNegativesSymmetricRankingLoss`, MNR in both directions.
- ``"batch-all"``, ``"batch-hard"``, ``"batch-semi-hard"``, ``"batch-hard-soft-margin"``:
  label-based batch triplet losses over ``embeddings (B, D)``, ``labels (B,)`` (use a P x K sampler).
- ``"ladder"``: :class:`LadderLoss` for graded relevance (Zhou et al. 2020).

:func:`false_negative_masks` builds the text-based masks the MNR losses accept.
"""

from __future__ import annotations

import inspect

from torch import nn

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.batch_all_triplet import BatchAllTripletLoss
from sbert_triplet.losses.batch_hard_soft_margin_triplet import BatchHardSoftMarginTripletLoss
from sbert_triplet.losses.batch_hard_triplet import BatchHardTripletLoss
from sbert_triplet.losses.batch_semi_hard_triplet import BatchSemiHardTripletLoss
from sbert_triplet.losses.false_negatives import false_negative_masks
from sbert_triplet.losses.ladder import LadderLoss
from sbert_triplet.losses.mnr import MultipleNegativesRankingLoss, MultipleNegativesSymmetricRankingLoss
from sbert_triplet.losses.triplet import TripletLoss

LOSSES: dict[str, type[nn.Module]] = {
    "triplet": TripletLoss,
    "mnr": MultipleNegativesRankingLoss,
    "mnr-symmetric": MultipleNegativesSymmetricRankingLoss,
    "batch-all": BatchAllTripletLoss,
    "batch-hard": BatchHardTripletLoss,
    "batch-semi-hard": BatchSemiHardTripletLoss,
    "batch-hard-soft-margin": BatchHardSoftMarginTripletLoss,
    "ladder": LadderLoss,
}

__all__ = [
    "LOSSES",
    "BatchAllTripletLoss",
    "BatchHardSoftMarginTripletLoss",
    "BatchHardTripletLoss",
    "BatchSemiHardTripletLoss",
    "LadderLoss",
    "MultipleNegativesRankingLoss",
    "MultipleNegativesSymmetricRankingLoss",
    "TripletLoss",
    "build_loss",
    "false_negative_masks",
]


def _options(cls: type[nn.Module]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    return [name for name in params if name != "self"]


def build_loss(name: str, **options) -> nn.Module:
    """Build a loss by name: ``build_loss("triplet", distance="cosine", margin=0.3)``.

    Args:
        name: a key of :data:`LOSSES`, e.g. ``"triplet"``, ``"mnr"``, ``"mnr-symmetric"``
            (case-insensitive).
        **options: the loss class's constructor arguments (triplet: distance, margin;
            mnr: scale or temperature, symmetric; mnr-symmetric: scale or temperature).

    Raises:
        ConfigError: unknown name or option (the message lists the valid ones), or an
            invalid option value (raised by the loss itself).
    """
    key = str(name).strip().lower()
    if key not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    cls = LOSSES[key]
    valid = _options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for loss {key!r}; valid options: {valid}")
    return cls(**options)
