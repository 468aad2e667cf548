"""What the loop optimises: a loss, and how a collated batch's embeddings feed it.

Every loss consumes embeddings (habit 2), so the same closure
``loss_from_embeddings({column: (B, D)}) -> scalar`` serves the plain path (one forward
per column) and the gradient cache. Four kinds of loss, by the data they read:

- ``triplet``: columns ``anchor``, ``positive``, ``negative_1..k`` (k >= 1);
- ``mnr`` (``mnr``, ``mnr-symmetric``): ``anchor``, ``positive`` and optional negatives;
  the other rows are the in-batch negatives. With ``mask_false_negatives`` a candidate
  whose *text* the batch labels a positive of the row (e.g. a duplicate positive) is left
  out of that row's softmax (:func:`~sbert_triplet.losses.false_negative_masks`);
- ``labels`` (``batch-all``, ``batch-hard``, ``batch-semi-hard``, ``batch-hard-soft-margin``):
  column ``text`` and one class label per row; triplets are mined inside the batch;
- ``ladder``: scored pairs (``anchor`` = sentence1, ``positive`` = sentence2, ``score``).
  Anchor i's candidates are all B second sentences of the batch; relevance is the row's
  level (its score bucketed, see :func:`ladder_levels`) for its own pair and 0 for every
  other row's sentence (a duplicate second sentence in the batch counts as irrelevant:
  use ``--sampler no-duplicates`` when that matters).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sbert_triplet.config import IN_BATCH_NEGATIVE_LOSSES, LABEL_LOSSES, MNR_LOSSES, TrainConfig
from sbert_triplet.errors import ConfigError
from sbert_triplet.training.batching import negative_columns, split_embeddings
from sbert_triplet.training.bucketing import EncodePlan

COUNT_ATTRIBUTES = {"last_num_triplets": "num_triplets", "last_num_active": "num_active", "last_num_pairs": "num_pairs"}
LADDER_FURTHER_MARGIN = 0.01  # alpha_2..alpha_L of the ladder (the paper's second margin)


def loss_kind(loss: str) -> str:
    """``"triplet"``, ``"mnr"``, ``"labels"`` or ``"ladder"``: what data the loss reads."""
    if loss in MNR_LOSSES:
        return "mnr"
    if loss in LABEL_LOSSES:
        return "labels"
    return loss


@dataclass
class Objective:
    """A built loss and its kind; turns a collated batch into a loss closure and counts."""

    name: str
    kind: str
    loss_fn: nn.Module
    mask_false_negatives: bool = False
    _candidate_mask: Tensor | None = None  # of the last batch a closure was made for (for stats)

    def loss_from_embeddings(self, batch: dict[str, Any]) -> Callable[[dict[str, Tensor]], Tensor]:
        """The closure ``{column: (B, D)} -> scalar loss`` for this batch (masks, labels bound in)."""
        if self.kind == "labels":
            labels = batch["labels"]  # (B,)
            return lambda emb: self.loss_fn(emb["text"].float(), labels.to(emb["text"].device))
        if self.kind == "ladder":
            return lambda emb: self._ladder(emb, batch["labels"])
        candidate_mask, anchor_mask = self._masks(batch["texts"]) if self.kind == "mnr" else (None, None)
        self._candidate_mask = candidate_mask

        def loss_from_embeddings(emb: dict[str, Tensor]) -> Tensor:
            anchor, positive, negatives = split_embeddings(emb)  # (B, D), (B, D), (B, K, D) | None
            negatives = None if negatives is None else negatives.float()
            if self.kind == "triplet":
                return self.loss_fn(anchor.float(), positive.float(), negatives)
            return self.loss_fn(anchor.float(), positive.float(), negatives,
                                candidate_mask=candidate_mask, anchor_mask=anchor_mask)

        return loss_from_embeddings

    def check_margin(self, normalized: bool) -> None:
        """Raise ConfigError if the loss's margin can never be met (``normalized``: unit-length embeddings)."""
        if hasattr(self.loss_fn, "check_margin"):
            self.loss_fn.check_margin(normalized=normalized)

    def stats(self, batch: dict[str, Any]) -> dict[str, float]:
        """Counts after the loss ran on ``batch`` (call after its closure): the loss's own,
        negatives per anchor for MNR (in-batch candidates minus the own positive and masked ones),
        and the batch's ``real_tokens`` and ``padded_tokens`` (what one pass of the encoder computes)."""
        stats: dict[str, float] = {}
        plan = batch.get("features")
        if isinstance(plan, EncodePlan):
            stats.update(real_tokens=float(plan.real_tokens), padded_tokens=float(plan.padded_tokens))
        for attribute, key in COUNT_ATTRIBUTES.items():
            value = getattr(self.loss_fn, attribute, None)
            if value is not None:
                stats[key] = float(sum(value) if isinstance(value, Sequence) else value)
        if self.kind == "mnr":
            stats.update(self._negatives_per_anchor(batch["texts"]))
        return stats

    def _masks(self, texts: dict[str, list[str]]) -> tuple[Tensor | None, Tensor | None]:
        if not self.mask_false_negatives:
            return None, None
        from sbert_triplet.losses import false_negative_masks

        negs = negative_columns(list(texts))
        rows = [[texts[c][i] for c in negs] for i in range(len(texts["anchor"]))] if negs else None
        return false_negative_masks(texts["anchor"], texts["positive"], rows)  # (B, B*(1+K)), (B, B)

    def _negatives_per_anchor(self, texts: dict[str, list[str]]) -> dict[str, float]:
        batch = len(texts["anchor"])
        candidates = batch * (1 + len(negative_columns(list(texts))))  # B*(1+K)
        if self._candidate_mask is None:
            return {"negatives_per_anchor": float(candidates - 1)}
        kept = self._candidate_mask.sum(dim=1).float()  # (B,)
        return {"negatives_per_anchor": (kept - 1).mean().item(),
                "masked_false_negatives": float(candidates * batch - kept.sum().item())}

    def _ladder(self, emb: dict[str, Tensor], levels: Tensor) -> Tensor:
        anchor, positive = emb["anchor"].float(), emb["positive"].float()  # (B, D), (B, D)
        batch, dim = positive.shape
        candidates = positive.unsqueeze(0).expand(batch, batch, dim)  # (B, B, D): every row sees all positives
        relevance = torch.diag(levels.to(anchor.device))  # (B, B): own pair's level, 0 elsewhere
        return self.loss_fn(anchor, candidates, relevance)


def ladder_levels(scores: Sequence[float], levels: int) -> list[int]:
    """Bucket scores into relevance levels ``0..levels``: ``round(levels * (s - lo) / (hi - lo))``.

    ``lo`` / ``hi`` are the smallest / largest score given (the whole training set), so
    with ``levels=2`` STS-B scores 0-5 become 0 (below 1.25), 1 (1.25 to 3.75) and 2. All
    scores equal: every row gets ``levels``.
    """
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [levels] * len(scores)
    return [int(round(levels * (s - lo) / (hi - lo))) for s in scores]


def build_objective(config: TrainConfig, columns: Sequence[str]) -> Objective:
    """Build the configured loss for data with ``columns`` (before the model is loaded).

    Call :meth:`Objective.check_margin` once it is known whether embeddings are normalised.

    Raises:
        ConfigError: the triplet loss without a negative column; an option the loss does not
            take (e.g. ``--swap`` with ``mnr``); an invalid option value (raised by the loss).
    """
    from sbert_triplet.losses import LOSSES, build_loss

    cfg = config.loss
    kind = loss_kind(cfg.loss)
    if kind == "triplet" and not negative_columns(list(columns)):
        raise ConfigError(
            "the triplet loss needs a negative column (negative or negative_1..k); "
            "this data has only anchor/positive: use --loss mnr, or map a column with --columns negative=<name>"
        )
    accepted = set(inspect.signature(LOSSES[cfg.loss].__init__).parameters) - {"self"}
    loss_fn = build_loss(cfg.loss, **_loss_options(config, accepted))
    return Objective(cfg.loss, kind, loss_fn, mask_false_negatives=bool(cfg.mask_false_negatives))


def _loss_options(config: TrainConfig, accepted: set[str]) -> dict[str, Any]:
    """The loss options the user gave, checked against what the loss takes."""
    cfg = config.loss
    given = {"distance": cfg.distance, "margin": cfg.margin, "soft_margin": cfg.soft_margin or None,
             "swap": cfg.swap or None, "scale": cfg.scale}
    given = {k: v for k, v in given.items() if v is not None}
    if cfg.loss == "ladder":  # --margin is the first ladder step; one more small step per extra level
        first = given.pop("margin", 0.2)
        given["alphas"] = (first,) + (LADDER_FURTHER_MARGIN,) * (cfg.ladder_levels - 1)
    unknown = sorted(set(given) - accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        takes = ", ".join(sorted(accepted)) or "no options"
        raise ConfigError(f"{flags} does not apply to the {cfg.loss} loss (it takes: {takes})")
    return given


def accumulation_warning(config: TrainConfig) -> str | None:
    """The one-line warning for gradient accumulation with an in-batch-negative loss, or None."""
    steps, batch = config.optim.gradient_accumulation_steps, config.optim.batch_size
    if steps <= 1 or config.loss.loss not in IN_BATCH_NEGATIVE_LOSSES:
        return None
    return (
        f"--gradient-accumulation-steps {steps} adds no in-batch negatives to the {config.loss.loss} loss: each "
        f"batch of {batch} rows is still its own pool of negatives (and of mined triplets); only the gradient "
        f"is averaged over {steps} batches. For {steps * batch} rows per pool on the same memory, use "
        f"--batch-size {steps * batch} --mini-batch-size {batch} (gradient cache) instead"
    )
