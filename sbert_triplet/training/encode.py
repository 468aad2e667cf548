"""Inference encoding with length buckets and a token budget (optionally bf16 autocast).

``SentenceTransformer.encode`` sorts texts by character length and encodes a fixed number
of texts per forward pass. :func:`encode_texts` tokenises every distinct text once, sorts
by *token* length, and cuts the sorted texts into chunks of at most ``batch_tokens``
padded tokens (:func:`~sbert_triplet.training.bucketing.plan_buckets`), so short texts go
in wide chunks and long ones in narrow chunks with little padding. In fp32 the embeddings
equal ``encode``'s up to float rounding (the same masked computation); with ``bf16`` the
forward runs under bf16 autocast and the embeddings are returned in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from sbert_triplet.training.bucketing import (
    TokenCache,
    default_overhead_tokens,
    default_shape_multiple,
    encode_chunk,
    plan_buckets,
)


def encode_texts(model, texts: Sequence[str], *, batch_tokens: int | None = None, bf16: bool = False,
                 overhead_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                 rows_multiple_of: int | None = None) -> Tensor:
    """Embed ``texts`` with ``model`` (a SentenceTransformer) in eval mode, without gradients.

    Args:
        model: the encoder; its train/eval mode is restored afterwards.
        texts: the texts; duplicates are encoded once.
        batch_tokens: most padded tokens per forward pass [64 x ``model.max_seq_length``,
            the worst case of ``encode(batch_size=64)``].
        bf16: run the forward under bf16 autocast (CPU with bf16 support, or GPU).
        overhead_tokens: the cost of one more forward call in tokens [CPU 32, GPU 4096].
        pad_to_multiple_of, rows_multiple_of: round chunk widths and row counts so that
            chunk shapes repeat (see :func:`~sbert_triplet.training.bucketing.plan_buckets`)
            [:func:`~sbert_triplet.training.bucketing.default_shape_multiple`: 8 in bf16 or on GPU, else 1].

    Returns:
        ``(len(texts), D)`` float32 embeddings, on the model's device, in input order.

    Raises:
        ValueError: ``texts`` is empty, ``batch_tokens`` < 1, or a multiple < 1.
    """
    if len(texts) == 0:
        raise ValueError("nothing to encode: the list of texts is empty")
    if batch_tokens is not None and batch_tokens < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {batch_tokens}")
    device = model.device
    budget = batch_tokens or 64 * int(model.max_seq_length)
    overhead = default_overhead_tokens(device) if overhead_tokens is None else overhead_tokens
    cache = TokenCache.for_model(model, texts)
    multiple = default_shape_multiple(device, bf16)
    pad_to_multiple_of = multiple if pad_to_multiple_of is None else pad_to_multiple_of
    rows_multiple_of = multiple if rows_multiple_of is None else rows_multiple_of
    groups = plan_buckets(cache.lengths.tolist(), overhead, budget, pad_to_multiple_of=pad_to_multiple_of,
                          rows_multiple_of=rows_multiple_of, max_length=cache.max_length)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast:
            parts = [encode_chunk(model, cache.pad(torch.from_numpy(g), pad_to_multiple_of), device).float()
                     for g in groups]  # [(n, D)]
    finally:
        model.train(was_training)
    order = torch.from_numpy(np.concatenate(groups)).to(device)  # (U,) cache row of each output
    embeddings = torch.empty(len(cache), parts[0].shape[1], device=device)  # (U, D)
    embeddings[order] = torch.cat(parts)
    return embeddings[cache.ids(texts).to(device)]  # (N, D)
