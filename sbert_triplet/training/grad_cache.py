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

The chunks may also come from an :class:`~sbert_triplet.training.bucketing.EncodePlan`
(what the training loader gives): the batch's texts of all columns sorted by length and cut
into chunks of at most ``M x longest text`` padded tokens, so short texts go in fewer,
wider chunks and little padding is computed. Plain ``{column: features}`` are chunked
column by column, ``M`` rows at a time.

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

from sbert_triplet.training.bucketing import EncodePlan, chunk_features, encode_chunk

__all__ = ["RngState", "chunk_features", "grad_cache_backward"]

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


def _first_pass(model, plan: EncodePlan, device) -> tuple[dict[str, Tensor], list[RngState]]:
    """Step 1: no-grad forward of every chunk, remembering the RNG state before each."""
    states: list[RngState] = []
    parts: list[Tensor] = []
    with torch.no_grad():
        for chunk in plan.chunks:
            states.append(RngState(device))
            parts.append(encode_chunk(model, chunk, device))  # (n_k, D)
    return plan.split(torch.cat(parts, dim=0)), states  # {column: (B, D)}


def _embedding_grads(embeddings: dict[str, Tensor], loss_from_embeddings) -> tuple[Tensor, dict[str, Tensor]]:
    """Step 2: the loss on detached embeddings and its gradient with respect to them.

    A column the loss does not use gets no entry.
    """
    leaves = {col: emb.detach().requires_grad_() for col, emb in embeddings.items()}  # {col: (B, D)}
    with torch.enable_grad():
        loss = loss_from_embeddings(leaves)  # ()
        cols = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[c] for c in cols], allow_unused=True)
    return loss.detach(), {c: g for c, g in zip(cols, grads) if g is not None}  # {col: (B, D)}


def _chunk_grads(plan: EncodePlan, grads: dict[str, Tensor]) -> list[Tensor | None]:
    """Each chunk's slice of the embedding gradients (None for a chunk of unused columns only)."""
    like = next(iter(grads.values()))  # (B, D)
    flat = torch.cat([grads[c] if c in grads else torch.zeros_like(like) for c in plan.columns])  # (C*B, D)
    used = torch.cat([torch.full((plan.rows,), c in grads) for c in plan.columns])  # (C*B,)
    return [flat[p.to(flat.device)] if bool(used[p].any()) else None for p in plan.positions]  # [(n_k, D)]


def grad_cache_backward(
    model,
    batch: EncodePlan | dict[str, Features],
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
        batch: ``{column: tokenised features}``, every column with the same number of rows B,
            chunked ``mini_batch_size`` rows at a time; or an ``EncodePlan``, whose chunks are
            used as they are (the planner already applied the mini-batch budget).
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
    plan = batch if isinstance(batch, EncodePlan) else EncodePlan.from_columns(batch, mini_batch_size)
    embeddings, states = _first_pass(model, plan, device)
    loss, grads = _embedding_grads(embeddings, loss_from_embeddings)
    jobs = [(k, g) for k, g in enumerate(_chunk_grads(plan, grads)) if g is not None]
    for n, (k, grad_chunk) in enumerate(jobs):
        last = n == len(jobs) - 1
        sync = contextlib.nullcontext() if last or accelerator is None else accelerator.no_sync(model)
        replay = states[k].replay() if replay_rng else contextlib.nullcontext()
        with sync, replay:
            chunk_embeddings = encode_chunk(model, plan.chunks[k], device)  # (n_k, D)
            if accelerator is None:
                torch.autograd.backward(chunk_embeddings, grad_chunk.to(chunk_embeddings.dtype))
            else:
                accelerator.backward((chunk_embeddings * grad_chunk.to(chunk_embeddings.dtype)).sum())
    return loss
