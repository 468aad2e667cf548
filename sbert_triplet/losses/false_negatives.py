"""False-negative masks for in-batch losses, decided from the texts before encoding.

With in-batch negatives a duplicate text is a false negative: if rows 1 and 3 share the
positive ``"d"``, row 1's softmax holds ``"d"`` twice (once as its positive, once as "a
negative") and can never do better than ``ln 2``. Embedding equality cannot detect this
under dropout (two encodings of one text differ), so the masks come from the texts.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


def _check_columns(anchors, positives, negatives) -> int:
    """Return K (hard negatives per row); raise ValueError on lengths that do not fit."""
    if len(anchors) != len(positives):
        raise ValueError(
            f"anchors and positives must have one text per row, got {len(anchors)} anchors "
            f"and {len(positives)} positives"
        )
    if negatives is None:
        return 0
    if len(negatives) != len(anchors):
        raise ValueError(f"negatives must have one list per row ({len(anchors)}), got {len(negatives)}")
    sizes = sorted({len(row) for row in negatives})
    if len(sizes) > 1:
        raise ValueError(f"every row needs the same number K of hard negatives, got lengths {sizes}")
    return sizes[0] if sizes else 0


def _index(texts) -> dict[str, list[int]]:
    """text -> positions where it occurs (exact string equality)."""
    where: dict[str, list[int]] = defaultdict(list)
    for position, text in enumerate(texts):
        where[text].append(position)
    return where


def _clear(mask: Tensor, rows: list[int], cols: list[int]) -> None:
    """Set ``mask[rows x cols]`` to False; a lone (i, i) pair is the own slot, kept anyway."""
    if len(rows) == 1 and len(cols) == 1:
        return
    mask[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = False  # (|rows|, |cols|) entries


def false_negative_masks(
    anchors: list[str], positives: list[str], negatives: list[list[str]] | None = None
) -> tuple[Tensor, Tensor]:
    """Masks for :class:`~sbert_triplet.losses.mnr.MultipleNegativesRankingLoss`: False = false negative.

    The batch labels pairs: ``(anchors[i], positives[i])`` says "this positive text answers
    this anchor text". A candidate is removed from a row's softmax when the batch itself
    labels it a positive for that row, other than the row's own slot:

    - forward, row i (anchor i against the ``B * (1 + K)`` candidates: all positives, then all
      hard negatives row-major): candidate j is masked when its text is ``positives[k]`` for
      some row k with ``anchors[k] == anchors[i]``. With ``k = i`` this is the rule "a candidate
      identical to row i's own positive" (another row's positive or any hard negative, row
      i's own included); ``k != i`` covers one anchor with two positives in the batch.
    - backward, row i (positive i against the ``B`` anchors): anchor j is masked when its text
      is ``anchors[k]`` for some row k with ``positives[k] == positives[i]``. With ``k = i``
      this is "an anchor identical to anchor i"; ``k != i`` covers two anchors sharing one
      positive (row j's own pair ``(anchors[j], positives[j])`` then matches positive i).

    The own slots ``[i, i]`` are always True. Equality is exact Python string equality: no
    normalisation (case, whitespace, Unicode) is applied; normalise the texts first if
    near-duplicates should count. Texts that merely equal another row's *anchor* are not masked.

    Time: one hash-map pass over the ``B * (2 + K)`` texts, plus work proportional to the
    number of masked entries (duplicate-free batches mask nothing); fine for B in the thousands.

    Args:
        anchors: B anchor texts.
        positives: B positive texts, ``positives[i]`` pairs with ``anchors[i]``.
        negatives: None, or B lists of K hard-negative texts each (the same K for every row).

    Returns:
        ``candidate_mask`` bool (B, B*(1+K)) and ``anchor_mask`` bool (B, B); True = keep.

    Raises:
        ValueError: lists of different lengths, or rows with different numbers of negatives.
    """
    num_neg = _check_columns(anchors, positives, negatives)
    batch = len(anchors)
    candidates = list(positives) + [text for row in (negatives or []) for text in row]  # B*(1+K) texts
    candidate_mask = torch.ones(batch, batch * (1 + num_neg), dtype=torch.bool)  # (B, B*(1+K))
    anchor_mask = torch.ones(batch, batch, dtype=torch.bool)  # (B, B)
    rows_by_anchor, rows_by_positive = _index(anchors), _index(positives)
    cols_by_text = _index(candidates)
    for anchor, positive in {(a, p): None for a, p in zip(anchors, positives)}:  # labelled pairs, in order
        _clear(candidate_mask, rows_by_anchor[anchor], cols_by_text[positive])
        _clear(anchor_mask, rows_by_positive[positive], rows_by_anchor[anchor])
    own = torch.arange(batch)  # (B,)
    candidate_mask[own, own] = True
    anchor_mask[own, own] = True
    return candidate_mask, anchor_mask
