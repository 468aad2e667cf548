"""Length-bucketed encoding: tokenise each text once, encode a batch in length-homogeneous chunks.

A batch padded to its longest text wastes most of its compute on padding: on SNLI
triplets at 64 tokens, 61% of the tokens of a randomly drawn batch of 32 triplets are
padding. Here every text of the batch (all columns together) is sorted by token length,
split into a few contiguous groups, each padded only to its own longest text, encoded,
and the embeddings are put back in the original order. Attention masks keep padding out
of every real token's computation and out of mean pooling, so the embeddings, the loss and
every gradient are those of the one-forward-per-column computation (dropout off; tested
in float64). With dropout on, the masks are drawn per chunk, so they differ from the
unbucketed run's: the same distribution, other draws.

How many groups: sorted lengths ``l_1 <= ... <= l_N`` are cut into contiguous groups
minimising ``sum(rows_g * l_max_g) + overhead_tokens * groups`` (dynamic programming), where
``overhead_tokens`` is the fixed cost of one more forward/backward call expressed in tokens
(small on CPU, large on GPU), and no group may exceed ``max_tokens`` padded tokens (the
gradient cache's memory budget).

Each group is padded to its longest text rounded up to a multiple of
``pad_to_multiple_of`` (capped at the model's ``max_seq_length``), and row counts to
multiples of ``rows_multiple_of`` (8 and 8 in bf16, see :func:`default_shape_multiple`), so the
chunk shapes repeat from step to step: on CPU in bf16, oneDNN builds a new matmul
primitive for every input shape it has not seen, and a first-seen shape costs about twice
a cached one; with exact lengths almost every chunk of every step is a new shape. The
extra padding is masked like any other, so the result is unchanged.

Tokenisation happens once per distinct text when the loader is built
(:class:`TokenCache`), with the encoder's own ``SentenceTransformer.preprocess``, so token
ids equal what it would give at each step; a step only pads cached rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbert_triplet.training.packed import encode_packed, supports_packed
from sbert_triplet.training.token_embeddings import one_lookup_per_batch

Features = dict[str, Any]  # a tokenised chunk: input_ids (n, L), attention_mask (n, L), ... and non-tensor values
DEFAULT_OVERHEAD_TOKENS = {"cpu": 32, "cuda": 4096}  # one more forward+backward call costs about this many tokens
SHAPE_MULTIPLE = 8  # bf16 / accelerators: chunk widths and row counts rounded to this (module docstring)


def default_shape_multiple(device: torch.device | str, bf16: bool) -> int:
    """The ``pad_to_multiple_of`` and ``rows_multiple_of`` to use: 8 in bf16 or off the CPU, else 1.

    Measured on all-MiniLM-L6-v2, SNLI triplets, batch 32, 64 tokens, 2-core CPU (median of 3
    interleaved rounds, one process each): bf16 fwd+bwd 1.36x faster with 8/8 than with exact
    cuts (1.45x the unbucketed batch); fp32 0.75x (fp32 pays for the extra padding and gains
    nothing from repeated shapes), hence 1 there.
    """
    return SHAPE_MULTIPLE if bf16 or torch.device(device).type != "cpu" else 1


def padded_length(longest: int, multiple: int = 1, cap: int | None = None) -> int:
    """``longest`` rounded up to a multiple of ``multiple``, but not above ``cap`` (nor below ``longest``)."""
    width = -(-int(longest) // multiple) * multiple
    return width if cap is None else max(int(longest), min(width, cap))


def default_overhead_tokens(device: torch.device | str) -> int:
    """The per-chunk cost in tokens for ``device`` (CPU 32, accelerators 4096; see the module docstring)."""
    kind = torch.device(device).type
    return DEFAULT_OVERHEAD_TOKENS.get(kind, DEFAULT_OVERHEAD_TOKENS["cuda"])


class TokenCache:
    """Every distinct text tokenised once and kept unpadded, in one flat tensor per feature.

    Args (of :meth:`build`):
        tokenize: ``SentenceTransformer.preprocess``: list[str] -> padded features
            (``input_ids``, ``attention_mask`` (n, L), optionally ``token_type_ids``, and
            non-tensor values such as ``modality`` that are passed through).
        texts: the texts (duplicates are tokenised once).
        pad_token_id: the tokenizer's padding id (other features pad with 0).
        padding_side: ``"right"`` or ``"left"``, as the tokenizer pads.
        max_length: the widest a padded chunk may be (rounding never pads past it), or None.
    """

    def __init__(self, flat: dict[str, Tensor], lengths: Tensor, row_of: dict[str, int], extras: dict[str, Any],
                 pad_token_id: int, padding_side: str, max_length: int | None = None) -> None:
        self.flat = flat  # {key: (T,)} all texts' real tokens, concatenated
        self.lengths = lengths  # (U,) tokens per distinct text
        self.offsets = torch.cumsum(lengths, 0) - lengths  # (U,) where each text starts in ``flat``
        self.row_of = row_of
        self.extras = extras
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.max_length = max_length  # no chunk is padded wider (the encoder's max_seq_length), or None

    @classmethod
    def build(cls, tokenize: Callable[[list[str]], Features], texts: Iterable[str], *, pad_token_id: int = 0,
              padding_side: str = "right", chunk_size: int = 4096, max_length: int | None = None) -> TokenCache:
        """Tokenise the distinct ``texts`` in chunks of ``chunk_size``.

        Raises:
            ValueError: the tokenizer gave no ``attention_mask``, or a tensor that is not (n, L).
        """
        unique = list(dict.fromkeys(texts))
        parts: dict[str, list[Tensor]] = {}
        lengths: list[Tensor] = []
        extras: dict[str, Any] = {}
        for start in range(0, len(unique), chunk_size):
            feats = tokenize(unique[start:start + chunk_size])
            if "attention_mask" not in feats:
                raise ValueError(f"the tokenizer returned {sorted(feats)} without an attention_mask: cannot unpad")
            mask = feats["attention_mask"].bool()  # (n, L)
            lengths.append(mask.sum(dim=1))  # (n,)
            for key, value in feats.items():
                if not isinstance(value, Tensor):
                    extras[key] = value
                    continue
                if value.shape != mask.shape:
                    raise ValueError(f"feature {key!r} has shape {tuple(value.shape)}, expected (n, L) = "
                                     f"{tuple(mask.shape)}: it cannot be cached unpadded")
                parts.setdefault(key, []).append(value[mask])  # (tokens,) row-major: text by text
        flat = {key: torch.cat(values) for key, values in parts.items()}
        all_lengths = torch.cat(lengths) if lengths else torch.zeros(0, dtype=torch.long)  # (U,)
        return cls(flat, all_lengths, {t: i for i, t in enumerate(unique)}, extras, pad_token_id, padding_side,
                   max_length)

    @classmethod
    def for_model(cls, model, texts: Iterable[str]) -> TokenCache:
        """:meth:`build` with a SentenceTransformer's ``preprocess``, tokenizer padding and ``max_seq_length``."""
        tokenizer = model.tokenizer
        max_length = getattr(model, "max_seq_length", None)
        return cls.build(model.preprocess, texts, pad_token_id=tokenizer.pad_token_id or 0,
                         padding_side=getattr(tokenizer, "padding_side", "right"),
                         max_length=int(max_length) if max_length else None)

    def __len__(self) -> int:
        return len(self.row_of)

    def ids(self, texts: Sequence[str]) -> Tensor:
        """Cache rows of ``texts``.  -> (n,) int64. Raises KeyError for a text not cached."""
        return torch.tensor([self.row_of[t] for t in texts], dtype=torch.long)  # (n,)

    def pad(self, ids: Tensor, pad_to_multiple_of: int = 1) -> Features:
        """The features of cache rows ``ids``, padded to their longest rounded up to a multiple of
        ``pad_to_multiple_of`` (at most ``max_length``): tensors (n, L)."""
        lengths = self.lengths[ids]  # (n,)
        width = padded_length(int(lengths.max()), pad_to_multiple_of, self.max_length) if len(ids) else 0
        positions = torch.arange(width).unsqueeze(0)  # (1, L)
        if self.padding_side == "left":
            real = positions >= (width - lengths).unsqueeze(1)  # (n, L)
        else:
            real = positions < lengths.unsqueeze(1)  # (n, L)
        starts = self.offsets[ids]  # (n,)
        total = int(lengths.sum())
        shift = torch.repeat_interleave(starts - (torch.cumsum(lengths, 0) - lengths), lengths)  # (total,)
        gather = torch.arange(total) + shift  # (total,) positions in ``flat``, row by row
        features: Features = {}
        for key, flat in self.flat.items():
            fill = self.pad_token_id if key == "input_ids" else 0
            out = torch.full((len(ids), width), fill, dtype=flat.dtype)  # (n, L)
            out[real] = flat[gather]
            features[key] = out
        features.update(self.extras)
        return features


def plan_buckets(lengths: Sequence[int], overhead_tokens: float, max_tokens: int | None = None, *,
                 pad_to_multiple_of: int = 1, rows_multiple_of: int = 1,
                 max_length: int | None = None) -> list[np.ndarray]:
    """Cut texts of the given token ``lengths`` into length-homogeneous groups.

    Minimises ``sum(rows_g * width_g) + overhead_tokens * groups`` over cuts of the
    length-sorted order, with ``rows_g * width_g <= max_tokens`` (a single text wider
    than ``max_tokens`` gets a group of its own); ``width_g`` is the group's longest text
    rounded up to a multiple of ``pad_to_multiple_of``, at most ``max_length``
    (:func:`padded_length`), the width :meth:`TokenCache.pad` gives it. Every group but
    the first (shortest texts) holds a multiple of ``rows_multiple_of`` texts, unless
    ``max_tokens`` fits fewer than that many rows.

    Returns:
        Index arrays into ``lengths``, one per group, shortest texts first; together they
        cover every index once.

    Raises:
        ValueError: ``pad_to_multiple_of`` or ``rows_multiple_of`` < 1.
    """
    if pad_to_multiple_of < 1 or rows_multiple_of < 1:
        raise ValueError(f"pad_to_multiple_of and rows_multiple_of must be >= 1 (1 = no rounding), got "
                         f"{pad_to_multiple_of} and {rows_multiple_of}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")  # (N,)
    sorted_lengths = lengths[order]  # (N,)
    n = len(order)
    cost = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        longest = padded_length(int(sorted_lengths[end - 1]), pad_to_multiple_of, max_length)
        fit = n if max_tokens is None else max(1, max_tokens // max(longest, 1))
        starts = np.arange(max(0, end - fit), end)  # candidate first index of the last group
        sizes = end - starts  # (candidates,)
        allowed = (sizes % rows_multiple_of == 0) | (starts == 0) | (fit < rows_multiple_of)  # (candidates,)
        totals = np.where(allowed, cost[starts] + sizes * longest + overhead_tokens, np.inf)  # (candidates,)
        best = int(np.argmin(totals))
        cost[end], cut[end] = totals[best], starts[best]
    groups = []
    end = n
    while end > 0:
        groups.append(order[cut[end]:end])
        end = int(cut[end])
    return groups[::-1]


@dataclass
class EncodePlan:
    """How to encode a batch: padded chunks, and where each chunk's rows go.

    The batch has ``len(columns)`` columns of ``rows`` texts each; flat position
    ``c * rows + i`` is row ``i`` of column ``c``. Chunk ``k`` holds the texts at flat
    positions ``positions[k]``.
    """

    columns: list[str]
    rows: int
    chunks: list[Features]
    positions: list[Tensor]
    real_tokens: int = 0
    packed: bool = False  # encode through the padding-free forward when the model allows (training, CPU)
    shape_multiple: int = 1  # the planner's pad_to_multiple_of (> 1: make shapes repeat, bf16)
    inverse: Tensor = field(init=False)

    def __post_init__(self) -> None:
        order = torch.cat(self.positions) if self.positions else torch.zeros(0, dtype=torch.long)  # (C*B,)
        assert sorted(order.tolist()) == list(range(len(self.columns) * self.rows)), "chunks must cover every text once"
        self.inverse = torch.argsort(order)  # (C*B,) row of each flat position in the concatenated chunk outputs

    @property
    def padded_tokens(self) -> int:
        """Tokens the encoder computes, padding included (one pass over the chunks)."""
        return sum(int(chunk["attention_mask"].numel()) for chunk in self.chunks)

    def to(self, device, non_blocking: bool = False) -> EncodePlan:
        """The same plan with its chunks' tensors on ``device`` (Accelerate calls this on each batch)."""
        moved = [{k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v for k, v in c.items()}
                 for c in self.chunks]
        return EncodePlan(self.columns, self.rows, moved, self.positions, self.real_tokens, self.packed,
                          self.shape_multiple)

    def split(self, flat: Tensor) -> dict[str, Tensor]:
        """Concatenated chunk outputs (C*B, D) in chunk order -> ``{column: (B, D)}`` in row order."""
        restored = flat.index_select(0, self.inverse.to(flat.device))  # (C*B, D)
        return dict(zip(self.columns, restored.split(self.rows, dim=0)))

    @classmethod
    def from_columns(cls, features: dict[str, Features], chunk_rows: int | None = None) -> EncodePlan:
        """Column by column, ``chunk_rows`` rows at a time (all rows: one chunk per column), unsorted."""
        columns = list(features)
        rows = _num_rows(features[columns[0]])
        chunks, positions = [], []
        for c, col in enumerate(columns):
            assert _num_rows(features[col]) == rows, "every column of a batch must have the same number of rows"
            size = chunk_rows or rows
            for start, chunk in zip(range(0, rows, size), chunk_features(features[col], size)):
                chunks.append(chunk)
                positions.append(torch.arange(c * rows + start, c * rows + min(start + size, rows)))  # (<=M,)
        real = sum(int(f["attention_mask"].sum()) for f in features.values() if "attention_mask" in f)
        return cls(columns, rows, chunks, positions, real)


def chunk_features(features: Features, size: int) -> list[Features]:
    """Split a tokenised column into chunks of ``size`` rows (the last may be smaller).

    Every tensor is sliced along dim 0; other values (e.g. ``modality``) pass through.
    """
    rows = _num_rows(features)
    return [
        {k: v[start:start + size] if isinstance(v, Tensor) else v for k, v in features.items()}  # (<=M, L)
        for start in range(0, rows, size)
    ]


def _num_rows(features: Features) -> int:
    sizes = {v.shape[0] for v in features.values() if isinstance(v, Tensor)}
    assert len(sizes) == 1, f"features of one column must share their row count, got {sizes}"
    return sizes.pop()


@dataclass(frozen=True)
class BucketPlanner:
    """Turns a batch's cached texts into an :class:`EncodePlan`.

    Args:
        bucketing: sort all texts of the batch by length and cut them into groups
            (:func:`plan_buckets`); False pads each column to its own longest text, as
            ``SentenceTransformer.preprocess`` would.
        overhead_tokens: the cost of one more chunk, in tokens (see :func:`default_overhead_tokens`).
        chunk_rows: the gradient cache's mini-batch size M, or None. With bucketing a chunk
            may hold at most ``M * longest text of the batch`` padded tokens (the memory of
            M rows of the unbucketed batch); without, chunks are M rows of one column.
        pad_to_multiple_of: with bucketing, each chunk's width is its longest text rounded
            up to a multiple of this (at most the cache's ``max_length``), so chunk shapes
            repeat across steps; 1 pads to the longest text. Ignored without bucketing.
            :func:`default_shape_multiple` gives the measured choice.
        rows_multiple_of: with bucketing, every chunk but the shortest holds a multiple of
            this many texts (:func:`plan_buckets`); 1 lets the cuts fall anywhere.
        packed: mark plans for the padding-free forward (:mod:`~sbert_triplet.training.packed`),
            used in training when the model supports it.
    """

    bucketing: bool = True
    overhead_tokens: float = DEFAULT_OVERHEAD_TOKENS["cpu"]
    chunk_rows: int | None = None
    pad_to_multiple_of: int = 1
    rows_multiple_of: int = 1
    packed: bool = False

    def __call__(self, cache: TokenCache, ids: dict[str, Tensor]) -> EncodePlan:
        columns = list(ids)
        rows = len(ids[columns[0]])
        flat_ids = torch.cat([ids[c] for c in columns])  # (C*B,)
        lengths = cache.lengths[flat_ids]  # (C*B,)
        real = int(lengths.sum())
        if not self.bucketing:
            plan = EncodePlan.from_columns({c: cache.pad(ids[c]) for c in columns}, self.chunk_rows)
            plan.real_tokens, plan.packed, plan.shape_multiple = real, self.packed, self.pad_to_multiple_of
            return plan
        budget = None if self.chunk_rows is None else self.chunk_rows * int(lengths.max())
        groups = plan_buckets(lengths.tolist(), self.overhead_tokens, budget,
                              pad_to_multiple_of=self.pad_to_multiple_of, rows_multiple_of=self.rows_multiple_of,
                              max_length=cache.max_length)
        positions = [torch.from_numpy(g) for g in groups]  # [(n_g,)]
        chunks = [cache.pad(flat_ids[p], self.pad_to_multiple_of) for p in positions]
        return EncodePlan(columns, rows, chunks, positions, real, self.packed, self.pad_to_multiple_of)


PACKED_ROWS_MULTIPLE = 128  # packed token rows in bf16: a multiple of this (shapes repeat; < 128 dummy rows)


def encode_plan(model, plan: EncodePlan, device: torch.device | None = None) -> dict[str, Tensor]:
    """Encode every chunk of ``plan`` (with autograd if enabled).  -> ``{column: (B, D)}`` in row order.

    A ``packed`` plan goes through the padding-free forward when gradients are recorded and
    the model supports it (:func:`~sbert_triplet.training.packed.supports_packed`).
    """
    if plan.packed and torch.is_grad_enabled() and supports_packed(model):
        rows_multiple = PACKED_ROWS_MULTIPLE if plan.shape_multiple > 1 else 1
        flat = torch.cat(encode_packed(model, plan.chunks, device, rows_multiple), dim=0)  # (C*B, D)
        if flat.dtype in (torch.bfloat16, torch.float16):  # as Accelerate returns model outputs under autocast
            flat = flat.float()
        return plan.split(flat)
    with one_lookup_per_batch(model, plan.chunks):  # one token-embedding backward per batch, not per chunk
        parts = [encode_chunk(model, chunk, device) for chunk in plan.chunks]  # [(n_k, D)]
    return plan.split(torch.cat(parts, dim=0))  # {column: (B, D)}


def encode_chunk(model, chunk: Features, device: torch.device | None = None) -> Tensor:
    """``model(chunk)["sentence_embedding"]`` on a copy of ``chunk`` (moved to ``device``).  -> (n, D)"""
    moved = {k: v.to(device) if device is not None and isinstance(v, Tensor) else v for k, v in chunk.items()}
    return model(moved)["sentence_embedding"]  # (n, D)
