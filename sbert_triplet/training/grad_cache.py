"""Gradient cache: a big contrastive batch on a small memory budget, for any embedding loss.

Gao, Zhang, Han & Callan 2021, "Scaling Deep Contrastive Learning Batch Size under
Memory Limited Setup" (GradCache; reference code luyug/GradCache). In-batch-negative
losses get better with more rows per batch, but the encoder's activations for all rows
must then fit in memory at once. The loss, however, only needs the *embeddings* of the
whole batch, and those are small. So:

1. encode the batch in mini-batches ("chunks") of ``M`` rows without building a graph
   (``torch.no_grad``), recording the RNG state before each chunk's forward;
2. compute the loss on the concatenated, detached embeddings and backpropagate it to
   the embeddings only: ``g = d loss / d embeddings`` (cheap: no encoder in this graph);
3. encode each chunk again, *with* a graph, after restoring that chunk's RNG state (so
   dropout draws the same masks as in step 1), and backpropagate ``g``'s slice through
   it with ``torch.autograd.backward(chunk_embeddings, g_chunk)``. Parameter gradients
   accumulate over the chunks to exactly the big-batch gradient.

Peak activation memory is that of ``M`` rows instead of ``B``; the price is a second
forward pass. Every loss works unchanged (habit 2): the loss only sees embeddings.

Exactness: with dropout off the loss and every gradient equal those of one forward
of the whole batch. With dropout on they equal the *uncached computation on the same
chunks* (the same chunks forwarded with grad, in the same order, from the same seed,
in one graph): dropout masks are drawn per forward call and depend on the chunk's
shape, so no single forward of all ``B`` rows can reproduce the per-chunk masks. What
matters for training is that the backward pass sees the same masks as the forward pass
that produced the loss; without replaying the RNG (``replay_rng=False``) it does not,
and the gradients are those of a different network than the one whose loss was used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from sbert_triplet.training.batching import move_features

Features = dict[str, Any]  # a tokenised column: input_ids (B, L), attention_mask (B, L), ...


class RngState:
    """The torch CPU RNG state and, on CUDA, the RNG state of ``device``, captured now.

    ``with state.replay():`` runs its body from the captured state, then puts the RNG
    back where it was before the block (``torch.random.fork_rng``), so a replay never
    shifts what later code draws.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.cuda_device = device if device is not None and device.type == "cuda" else None
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(self.cuda_device) if self.cuda_device is not None else None

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        devices = [self.cuda_device] if self.cuda_device is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.cuda_device)
            yield


def chunk_features(features: Features, size: int) -> list[Features]:
    """Split a tokenised column into chunks of ``size`` rows (the last may be smaller).

    Every tensor is sliced along dim 0; other values (e.g. a text-length list) pass through.
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


def _encode(model, chunk: Features, device: torch.device | None) -> Tensor:
    if device is not None:
        chunk = move_features(chunk, device)
    return model(chunk)["sentence_embedding"]  # (M, D)


def _first_pass(model, chunks: dict[str, list[Features]], device) -> tuple[dict[str, Tensor], dict[str, list[RngState]]]:
    """Step 1: no-grad forward of every chunk, remembering the RNG state before each."""
    embeddings: dict[str, Tensor] = {}
    states: dict[str, list[RngState]] = {}
    with torch.no_grad():
        for col, col_chunks in chunks.items():
            states[col] = []
            parts = []
            for chunk in col_chunks:
                states[col].append(RngState(device))
                parts.append(_encode(model, chunk, device))  # (M, D)
            embeddings[col] = torch.cat(parts, dim=0)  # (B, D)
    return embeddings, states


def _embedding_grads(embeddings: dict[str, Tensor], loss_from_embeddings) -> tuple[Tensor, dict[str, Tensor]]:
    """Step 2: the loss on detached embeddings and its gradient with respect to them.

    A column the loss does not use gets no entry (and is not encoded again).
    """
    leaves = {col: emb.detach().requires_grad_() for col, emb in embeddings.items()}  # {col: (B, D)}
    with torch.enable_grad():
        loss = loss_from_embeddings(leaves)  # ()
        cols = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[c] for c in cols], allow_unused=True)
    return loss.detach(), {c: g for c, g in zip(cols, grads) if g is not None}  # {col: (B, D)}


def grad_cache_backward(
    model,
    batch: dict[str, Features],
    mini_batch_size: int,
    loss_from_embeddings: Callable[[dict[str, Tensor]], Tensor],
    *,
    device: torch.device | None = None,
    accelerator=None,
    replay_rng: bool = True,
) -> Tensor:
    """Backpropagate ``loss_from_embeddings`` over a whole batch, encoding ``mini_batch_size`` rows at a time.

    On return every trainable parameter's ``.grad`` holds (is increased by) the gradient of
    the loss of the whole batch, exactly as one big-batch backward would leave it (see the
    module docstring for the dropout caveat). The model is left in the mode it was in.

    Args:
        model: the encoder, called as ``model(features)["sentence_embedding"]`` -> (rows, D).
        batch: ``{column: tokenised features}``, every column with the same number of rows B.
        mini_batch_size: rows per forward pass, M >= 1 (M >= B is one chunk per column).
        loss_from_embeddings: ``{column: (B, D)} -> scalar`` loss; it may read anything else
            (labels, masks) from its closure.
        device: where to move each chunk's tensors (None: leave them where they are).
        accelerator: an ``accelerate.Accelerator``: the chunks' backward then goes through
            ``accelerator.backward`` (loss scaling, gradient accumulation) on the surrogate
            ``(chunk_embeddings * grad_chunk).sum()``, whose gradient is the same; gradient
            synchronisation across processes is skipped for all but the last chunk.
        replay_rng: restore each chunk's RNG state before its second forward (True). False
            exists only to show that it matters.

    Returns:
        The loss, detached (a scalar tensor).

    Raises:
        ValueError: ``mini_batch_size`` < 1.
    """
    if mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
    chunks = {col: chunk_features(feats, mini_batch_size) for col, feats in batch.items()}
    embeddings, states = _first_pass(model, chunks, device)
    loss, grads = _embedding_grads(embeddings, loss_from_embeddings)
    jobs = [(col, i) for col in grads for i in range(len(chunks[col]))]
    for n, (col, i) in enumerate(jobs):
        grad_chunk = grads[col][i * mini_batch_size:(i + 1) * mini_batch_size]  # (M, D)
        last = n == len(jobs) - 1
        sync = contextlib.nullcontext() if last or accelerator is None else accelerator.no_sync(model)
        replay = states[col][i].replay() if replay_rng else contextlib.nullcontext()
        with sync, replay:
            chunk_embeddings = _encode(model, chunks[col][i], device)  # (M, D)
            if accelerator is None:
                torch.autograd.backward(chunk_embeddings, grad_chunk)
            else:
                accelerator.backward((chunk_embeddings * grad_chunk.to(chunk_embeddings.dtype)).sum())
    return loss
