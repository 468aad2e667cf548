"""Ladder loss: graded relevance, a chain of triplet inequalities with one margin per relevance step."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sbert_triplet.errors import ConfigError
from sbert_triplet.losses.triplet import check_anchor_positive
from sbert_triplet.similarity import normalize


def _check_numbers(name: str, values: Sequence[float], upper: float) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ConfigError(f"{name} must be a non-empty list of numbers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < upper):
            raise ConfigError(f"every value in {name} must be a number in [0, {upper}), got {values!r}")
    return tuple(float(v) for v in values)


def _check_inputs(anchor: Tensor, candidates: Tensor, relevance: Tensor, levels: int) -> None:
    batch, dim = anchor.shape
    if not isinstance(candidates, Tensor) or not candidates.is_floating_point():
        raise ValueError("candidates must be a float torch.Tensor of embeddings (B, M, D)")
    if candidates.dim() != 3 or candidates.shape[0] != batch or candidates.shape[2] != dim:
        raise ValueError(
            f"candidates must have shape (B, M, D) = ({batch}, M, {dim}) to match anchor "
            f"{tuple(anchor.shape)}, got {tuple(candidates.shape)}"
        )
    if not isinstance(relevance, Tensor) or relevance.is_floating_point() or relevance.dtype == torch.bool:
        raise ValueError("relevance must be an integer torch.Tensor of levels (B, M)")
    if relevance.shape != candidates.shape[:2]:
        raise ValueError(
            f"relevance must have shape (B, M) = {tuple(candidates.shape[:2])}, one level per "
            f"candidate, got {tuple(relevance.shape)}"
        )
    if relevance.numel() and (relevance.min() < -1 or relevance.max() > levels):
        raise ValueError(
            f"relevance levels must be in 0..{levels} (len(alphas) = {levels} steps), or -1 for "
            f"padding; got values in [{int(relevance.min())}, {int(relevance.max())}]"
        )


class LadderLoss(nn.Module):
    r"""Ladder loss: more relevant candidates must be closer to the anchor, one margin per step.

    Relevance is an integer level per candidate, ``0`` (irrelevant) to ``L = len(alphas)``
    (most relevant, e.g. the ground truth); ``-1`` marks padding. With ``s`` the cosine
    similarity, ladder step ``l = 1..L`` splits the candidates at the threshold
    ``t_l = L + 1 - l``, so step 1 separates the top level from all others and step ``L``
    the relevant (>= 1) from the irrelevant (0), as in the paper. Its pairs are
    ``P_l = {(b, i, j): r_{bi} >= t_l > r_{bj} >= 0}`` and

    .. math::

        L = \sum_{l=1}^{L} \frac{\beta_l}{|P_l|} \sum_{(b, i, j) \in P_l}
            \max\big(0,\ \alpha_l - s(a_b, c_{bi}) + s(a_b, c_{bj})\big)

    a step with no pair adds 0 (all steps empty: exactly 0.0 with zero gradients). Each pair
    counts once per step it crosses, so a level-2 vs level-0 pair is pushed by
    ``alpha_1`` and ``alpha_2`` (the inequality chain). ``L = 1`` is the triplet loss with
    cosine similarity over all (relevant, irrelevant) pairs. After forward,
    :attr:`last_num_pairs` is ``[|P_1|, ..., |P_L|]``.

    Inputs: ``anchor (B, D)``, ``candidates (B, M, D)`` and ``relevance (B, M)`` (columns
    ``anchor``, ``candidate_1 .. candidate_M`` and their graded labels, e.g. annotated levels
    or bucketed cross-encoder scores). Units: cosine similarity in [-1, 1]; each margin in
    [0, 2). Sampler: any, as long as each anchor's list mixes several levels.

    Differences from the authors' code (cdluminate/ladderloss): it uses the batch's other
    items as candidates in both directions (image -> text and text -> image), the hardest
    violating pair per query (VSE++ max violation) instead of all pairs, and sums instead
    of averaging; here each anchor brings its own graded list, every pair counts and each
    step is averaged, so the loss scale does not grow with B or M.

    Args:
        alphas: margins ``alpha_1 .. alpha_L``, step 1 (top level vs the rest) first; each in
            [0, 2). Paper: ``(0.2, 0.01)``.
        betas: weights ``beta_1 .. beta_L`` (>= 0), one per step; ``None``: 1.0 for step 1 and
            0.25 for each further step (the paper's setting).

    Raises:
        ConfigError (a ValueError): empty alphas, a margin outside [0, 2), a negative or
            non-finite weight, or betas of another length than alphas.
        ValueError: in :meth:`forward`, inputs of the wrong shape or dtype, or a level
            outside -1..L.

    References:
        Zhou, Niu, Wang, Gao, Zhang & Hua 2020, "Ladder Loss for Coherent Visual-Semantic
        Embedding", AAAI.
    """

    def __init__(self, alphas: Sequence[float] = (0.2, 0.01), betas: Sequence[float] | None = None) -> None:
        super().__init__()
        self.alphas = _check_numbers("alphas", alphas, 2.0)
        if betas is None:
            betas = (1.0,) + (0.25,) * (len(self.alphas) - 1)
        self.betas = _check_numbers("betas", betas, math.inf)
        if len(self.betas) != len(self.alphas):
            raise ConfigError(
                f"betas must have one weight per step, len(alphas) = {len(self.alphas)}, got {len(self.betas)}"
            )
        self._num_pairs: Tensor | None = None

    @property
    def num_levels(self) -> int:
        """``L``: the highest relevance level, also the number of ladder steps."""
        return len(self.alphas)

    @property
    def last_num_pairs(self) -> list[int]:
        """Number of valid pairs of each step in the last forward (zeros before any forward)."""
        if self._num_pairs is None:
            return [0] * self.num_levels
        return [int(n) for n in self._num_pairs.tolist()]

    def forward(self, anchor: Tensor, candidates: Tensor, relevance: Tensor) -> Tensor:
        """Ladder loss of ``anchor (B, D)`` against ``candidates (B, M, D)`` graded by ``relevance (B, M)``.

        Returns:
            Scalar tensor, the weighted sum of the per-step mean hinge losses.

        Raises:
            ValueError: shapes or dtypes that do not fit, or a level outside -1..L.
        """
        check_anchor_positive(anchor, anchor)
        _check_inputs(anchor, candidates, relevance, self.num_levels)
        batch, num_cand, dim = candidates.shape
        unit_cand = normalize(candidates.reshape(batch * num_cand, dim)).view(batch, num_cand, dim)  # (B, M, D)
        sims = (normalize(anchor).unsqueeze(1) * unit_cand).sum(dim=-1)  # (B, M)
        diff = sims.unsqueeze(2) - sims.unsqueeze(1)  # (B, M, M): s(a, c_i) - s(a, c_j)
        total = sims.reshape(-1)[:0].sum()  # (): 0.0 on the graph
        counts = []
        for step, (alpha, beta) in enumerate(zip(self.alphas, self.betas), start=1):
            threshold = self.num_levels + 1 - step
            above = relevance >= threshold  # (B, M)
            below = (relevance >= 0) & (relevance < threshold)  # (B, M)
            pairs = above.unsqueeze(2) & below.unsqueeze(1)  # (B, M, M)
            count = pairs.sum()  # ()
            hinge = torch.relu(alpha - diff[pairs])  # (|P_l|,)
            total = total + beta * hinge.sum() / count.clamp_min(1)  # ()
            counts.append(count)
        self._num_pairs = torch.stack(counts).detach()  # (L,)
        return total  # ()

    def extra_repr(self) -> str:
        return f"alphas={list(self.alphas)}, betas={list(self.betas)}"
