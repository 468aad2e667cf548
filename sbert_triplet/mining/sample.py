"""Step 4 of mining: choose K negatives among the survivors of the filters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np


def sample_negatives(
    rows: Sequence[int], scores: Sequence[float], k: int, sampling: str = "top", rng: Optional[np.random.Generator] = None
) -> list[int]:
    """Up to ``k`` distinct rows: the ``k`` highest ``scores`` (cosine; ties keep input order)
    for ``sampling="top"``, or ``k`` drawn uniformly without replacement with ``rng`` for
    ``"random"`` (returned in descending score order). Fewer than ``k`` rows in means all of
    them come back: never padded, never repeated.

    Raises:
        ValueError: unknown ``sampling``, ``k`` < 1, or ``"random"`` without ``rng``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    order = sorted(range(len(rows)), key=lambda i: -scores[i])  # stable: ties keep input order
    if sampling == "top":
        chosen = order[:k]
    elif sampling == "random":
        if rng is None:
            raise ValueError("sampling='random' needs an rng (np.random.default_rng(seed))")
        picked = set(rng.choice(len(rows), size=min(k, len(rows)), replace=False).tolist()) if rows else set()
        chosen = [i for i in order if i in picked]
    else:
        raise ValueError(f"unknown sampling {sampling!r}; choose 'top' or 'random'")
    return [rows[i] for i in chosen]
