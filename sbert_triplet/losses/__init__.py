"""Losses on embeddings: each takes ``anchor (B, D)``, ``positive (B, D)``, negatives, never a model.

- ``"triplet"``: :class:`TripletLoss` (distance, margin), FaceNet / Sentence-BERT.
- ``"mnr"``: :class:`MultipleNegativesRankingLoss` (scale = 1 / temperature), InfoNCE.
"""

from __future__ import annotations

import inspect

from torch import nn

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.mnr import MultipleNegativesRankingLoss
from sbert_triplet.losses.triplet import TripletLoss

LOSSES: dict[str, type[nn.Module]] = {
    "triplet": TripletLoss,
    "mnr": MultipleNegativesRankingLoss,
}

__all__ = ["LOSSES", "MultipleNegativesRankingLoss", "TripletLoss", "build_loss"]


def _options(cls: type[nn.Module]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    return [name for name in params if name != "self"]


def build_loss(name: str, **options) -> nn.Module:
    """Build a loss by name: ``build_loss("triplet", distance="cosine", margin=0.3)``.

    Args:
        name: ``"triplet"`` or ``"mnr"`` (case-insensitive).
        **options: the loss class's constructor arguments (triplet: distance, margin;
            mnr: scale).

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
