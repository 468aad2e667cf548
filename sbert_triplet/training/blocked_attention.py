"""Attention with dropout, computed a block of texts at a time so the L x L matrices stay in cache (CPU).

In training, eager attention writes the (batch, heads, Lq, Lk) scores, masks them, writes
the softmax, the dropout mask and the dropped probabilities, and its backward reads and
writes each again. At 256 tokens, 32 texts and 12 heads each of these is 100 MB per layer,
so every pass runs at memory speed: on MiniLM / SciFact these passes were the largest
part of a training step after the matmuls (``bench/step_profile.py``). PyTorch's CPU
flash-attention kernel keeps them in cache but refuses dropout, and ``sdpa`` then falls
back to the eager path.

:func:`blocked_attention` computes the same function a block at a time: a few texts (or,
for long texts, a few heads of one text), about :data:`BLOCK_VALUES` scores, so a block's
matrices stay in the core's cache. Forward keeps only its inputs, the output and the
dropout masks; backward recomputes each block's scores and probabilities (the
recomputation of flash attention, Dao et al. 2022, arXiv:2205.14135) and applies eager
attention's own backward (softmax's backward kernel), so the gradients are those of eager
attention. Blocks run side by side on the intra-op threads (one block per thread, torch
single-threaded inside it), which also overlaps one block's Python with another's kernels.
Dropout masks come from :func:`~sbert_triplet.training.fast_dropout.dropout_mask`, one
seed per call from torch's generator and one stream per block, so they do not depend on the
number of threads.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from sbert_triplet.training.fast_dropout import dropout_mask, torch_seed

BLOCK_VALUES = 12 * 256 * 256  # scores per block: one 256-token text with 12 heads (3 MB in float32)
MIN_VALUES = 4 * BLOCK_VALUES  # eager_attention blocks attention from this many scores up (smaller ones stay in cache)
_pools: dict[int, ThreadPoolExecutor] = {}

Block = tuple[slice, slice]  # (texts, heads)


def _blocks(batch: int, heads: int, lq: int, lk: int) -> list[Block]:
    """Cut (batch, heads) into blocks of about BLOCK_VALUES scores: whole texts, or head groups of one text."""
    per_text = heads * lq * lk
    if per_text <= BLOCK_VALUES:
        texts = BLOCK_VALUES // per_text
        return [(slice(i, min(i + texts, batch)), slice(0, heads)) for i in range(0, batch, texts)]
    per_block = max(1, BLOCK_VALUES // (lq * lk))
    return [(slice(b, b + 1), slice(h, min(h + per_block, heads)))
            for b in range(batch) for h in range(0, heads, per_block)]


@contextlib.contextmanager
def _single_threaded_ops():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def _run_blocks(fn, n_blocks: int) -> None:
    """fn(i) for every block i: spread over the intra-op threads, each running torch single-threaded."""
    def worker(first: int, step: int) -> None:
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            for i in range(first, n_blocks, step):
                fn(i)

    if torch.get_num_threads() == 1 or n_blocks == 1:
        worker(0, 1)
        return
    with _single_threaded_ops() as threads:
        workers = min(threads, n_blocks)
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="sbert-attention")
        for future in [pool.submit(worker, w, workers) for w in range(workers)]:
            future.result()


def _rows(t: Tensor, block: Block) -> Tensor:
    """A block of a (B, H, L, x) tensor as (b*h, L, x) (a copy only when the block is not contiguous)."""
    part = t[block[0], block[1]]
    return part.reshape(-1, *part.shape[2:])


def _block_bias(bias: Tensor | None, block: Block) -> Tensor | None:
    """The additive mask (B|1, 1|H, Lq|1, Lk) for one block, as (b*h, Lq|1, Lk)."""
    if bias is None:
        return None
    texts, head_range = block
    part = bias[texts] if bias.shape[0] > 1 else bias
    part = part[:, head_range] if bias.shape[1] > 1 else part
    n_texts = texts.stop - texts.start
    n_heads = head_range.stop - head_range.start
    return part.expand(n_texts, n_heads, *part.shape[2:]).reshape(n_texts * n_heads, *part.shape[2:])


def _scores(q: Tensor, k: Tensor, bias: Tensor | None) -> Tensor:
    """(n, Lq, d) x (n, Lk, d) [+ (n, Lq|1, Lk)] -> (n, Lq, Lk)."""
    if bias is None:
        return torch.bmm(q, k.transpose(1, 2))
    return torch.baddbmm(bias, q, k.transpose(1, 2))


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16/fp32 inputs (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


class _BlockedAttention(torch.autograd.Function):
    """out = dropout(softmax(q k^T + bias)) v per block; q is already scaled."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, p: float) -> Tensor:
        batch, heads, lq, _ = q.shape
        blocks = _blocks(batch, heads, lq, k.shape[2])
        out = q.new_empty(batch, heads, lq, v.shape[3])
        seed = torch_seed() if p > 0 else 0
        acc = _softmax_dtype(q.dtype)
        masks: list[Tensor | None] = [None] * len(blocks)

        def run(i: int) -> None:
            block = blocks[i]
            probs = torch.softmax(_scores(_rows(q, block), _rows(k, block), _block_bias(bias, block)), -1,
                                  dtype=acc)  # (n, Lq, Lk)
            if p > 0:
                masks[i] = dropout_mask(probs.shape, p, seed=(seed, i), parallel=False)
                probs.mul_(masks[i])
            torch.bmm(probs.to(v.dtype), _rows(v, block), out=out[block].view(-1, lq, v.shape[3]))

        _run_blocks(run, len(blocks))
        ctx.save_for_backward(q, k, v, bias)
        ctx.blocks, ctx.masks = blocks, masks
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q, k, v, bias = ctx.saved_tensors
        grad_q, grad_k, grad_v = (t.new_empty(t.shape) for t in (q, k, v))  # contiguous, whatever the inputs' strides
        acc = _softmax_dtype(q.dtype)

        def run(i: int) -> None:
            block = ctx.blocks[i]
            qb, kb, vb, gb = _rows(q, block), _rows(k, block), _rows(v, block), _rows(grad_out, block)
            probs = torch.softmax(_scores(qb, kb, _block_bias(bias, block)), -1, dtype=acc)  # as in forward
            mask = ctx.masks[i]
            dropped = probs if mask is None else probs * mask
            torch.bmm(dropped.transpose(1, 2).to(v.dtype), gb, out=grad_v[block].view(vb.shape))
            grad_probs = torch.bmm(gb, vb.transpose(1, 2))  # (n, Lq, Lk), gradient of the dropped probabilities
            if mask is None:
                grad_probs = grad_probs.to(acc)
            elif grad_probs.dtype == mask.dtype:
                grad_probs.mul_(mask)
            else:  # bf16: the masked gradient in float32, as softmax's backward takes it
                grad_probs = grad_probs * mask
            grad_scores = torch.ops.aten._softmax_backward_data(grad_probs, probs, -1, qb.dtype).to(qb.dtype)
            torch.bmm(grad_scores, kb, out=grad_q[block].view(qb.shape))
            torch.bmm(grad_scores.transpose(1, 2), qb, out=grad_k[block].view(kb.shape))

        _run_blocks(run, len(ctx.blocks))
        return grad_q, grad_k, grad_v, None, None


def blocked_attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scaling: float,
                      dropout: float) -> Tensor:
    """softmax(scaling * Q K^T, masked) with dropout on the probabilities, times V.  -> (B, H, Lq, d)

    Shapes: query (B, H, Lq, d), key and value (B, H, Lk, d); ``mask`` None, bool (True =
    attend) or additive float, broadcastable to (B, H, Lq, Lk) with its last dimension Lk.
    ``dropout``: drop probability of the attention probabilities (masks from
    :func:`~sbert_triplet.training.fast_dropout.dropout_mask`). The same function and gradients
    as :func:`~sbert_triplet.training.fast_dropout.eager_attention` with the same masks, in
    less memory: the (B, H, Lq, Lk) matrices are never stored whole. Under CPU autocast the
    inputs are cast to its dtype (as its matmuls would be); the softmax runs in float32.
    """
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    bias = None
    if mask is not None:
        while mask.dim() < 4:
            mask = mask.unsqueeze(0)
        if mask.dtype == torch.bool:
            bias = torch.zeros(mask.shape, dtype=query.dtype, device=query.device)
            bias.masked_fill_(~mask, torch.finfo(query.dtype).min)
        else:
            bias = mask.to(query.dtype)
    with torch.autocast("cpu", enabled=False):
        return _BlockedAttention.apply(query * scaling, key, value, bias, dropout)
