"""One training batch: encode -> loss -> backward (plainly, or through the gradient cache);
the guarded optimizer update (non-finite losses and gradients are skipped); and the log window."""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from typing import Any

import torch
from torch import Tensor

from sbert_triplet.errors import NonFiniteLossError
from sbert_triplet.training.batching import embed_batch
from sbert_triplet.training.distributed import gathered_loss
from sbert_triplet.training.grad_cache import grad_cache_backward
from sbert_triplet.training.objective import Objective


def backward_batch(model, objective: Objective, batch: dict[str, Any], accelerator,
                   mini_batch_size: int | None, pool: dict[str, Any] | None = None) -> Tensor:
    """Encode ``batch``, compute the loss and backpropagate it; return the loss, detached.

    With ``mini_batch_size`` (M < B), the gradient cache encodes M rows at a time and gives
    the same loss and gradients as one big batch (:mod:`~sbert_triplet.training.grad_cache`).
    With ``pool`` (the global batch of :func:`~sbert_triplet.training.distributed.gather_batch`)
    the loss is that of every process's rows: this process's embeddings are gathered with
    gradients (:mod:`~sbert_triplet.training.distributed`). Backward goes through
    ``accelerator.backward`` either way (gradient accumulation and loss scaling).
    """
    loss_from_embeddings = objective.loss_from_embeddings(batch if pool is None else pool)
    if pool is not None:
        loss_from_embeddings = gathered_loss(loss_from_embeddings)
    if mini_batch_size is not None:
        return grad_cache_backward(model, batch["features"], mini_batch_size, loss_from_embeddings,
                                   device=accelerator.device, accelerator=accelerator)
    with accelerator.autocast():  # the packed forward calls the layers, not the (autocast-wrapped) model.forward
        embeddings = embed_batch(model, batch["features"], accelerator.device)  # {column: (B, D)}
    loss = loss_from_embeddings(embeddings)  # ()
    accelerator.backward(loss)
    return loss.detach()


def true_on_every_process(value: bool, accelerator) -> bool:
    """``value`` and-ed over all processes (one tiny all-reduce when several run)."""
    if accelerator.num_processes == 1:
        return value
    flag = torch.tensor([0.0 if value else 1.0], device=accelerator.device)  # (1,)
    return accelerator.reduce(flag, reduction="sum").item() == 0


def guarded_update(accelerator, model, optimizer, scheduler, max_grad_norm: float, loss_ok: bool) -> str:
    """Clip, step the optimizer and the LR schedule, zero the gradients; skip non-finite steps.

    ``loss_ok``: the loss of every accumulated batch on every process was finite. A non-finite
    loss skips the update before anything is unscaled; a non-finite gradient norm (after the
    DDP all-reduce, so every process agrees) skips it too, except with fp16, where the
    gradient scaler skips the step itself and lowers its scale (normal loss-scale search).
    The schedule moves only when the optimizer did.

    Returns:
        ``"ok"``, ``"nonfinite"`` (loss or gradient not finite: skipped) or ``"scaler-skip"``.
    """
    if not loss_ok:
        optimizer.zero_grad(set_to_none=True)
        return "nonfinite"
    max_norm = max_grad_norm if max_grad_norm > 0 else math.inf  # inf: measure only, never clip
    norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
    grads_ok = norm is None or math.isfinite(float(norm))
    if not grads_ok and accelerator.scaler is None:
        optimizer.zero_grad(set_to_none=True)
        return "nonfinite"
    optimizer.step()
    skipped = optimizer.step_was_skipped
    if not skipped:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return "scaler-skip" if skipped else "ok"


def report_nonfinite(state, batch: dict[str, Any], log, limit: int, checkpoints: list) -> None:
    """Log and warn about a skipped step (its first rows); raise after ``limit`` in a row.

    Raises:
        NonFiniteLossError: ``state.nonfinite_in_row >= limit``; the message names the last checkpoint.
    """
    anchors = [t[:80] for t in next(iter(batch["texts"].values()))[:8]]
    log.write({"event": "nonfinite", "step": state.step, "epoch": state.epoch, "in_a_row": state.nonfinite_in_row,
               "skipped_total": state.nonfinite_steps, "first_rows": anchors})
    warnings.warn(f"step {state.step}: non-finite loss or gradient, step skipped ({state.nonfinite_in_row} in a row)",
                  RuntimeWarning, stacklevel=3)
    if state.nonfinite_in_row >= limit:
        last = f"the last good checkpoint is {checkpoints[-1][1]}" if checkpoints else "no checkpoint was written"
        raise NonFiniteLossError(
            f"{state.nonfinite_in_row} steps in a row (up to step {state.step}) had a non-finite loss or gradient "
            f"and were skipped; {last}. See the 'nonfinite' events in train_log.jsonl for the rows; lower --lr, "
            f"drop the bad rows, or raise --max-nonfinite-steps (now {limit})")


class LogWindow:
    """Losses and loss counts of the batches since the last log line, and running totals."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_s = 0.0
        self.examples = 0  # rows over all processes, including those before a resume
        self.resumed_examples = 0  # of them, rows trained before this process started (not in examples_per_s)
        self.nonfinite = 0  # batches whose loss was not finite (left out of the means)
        self.last_loss = float("nan")
        self._losses: list[float] = []
        self._stats: dict[str, list[float]] = defaultdict(list)

    def add(self, loss: Tensor, stats: dict[str, float], rows: int) -> None:
        self.examples += rows
        if not math.isfinite(loss.item()):
            self.nonfinite += 1
            return
        self._losses.append(loss.item())
        for key, value in stats.items():
            self._stats[key].append(value)

    def elapsed(self) -> float:
        """Training seconds so far, evaluation time excluded."""
        return time.perf_counter() - self.start - self.eval_s

    def record(self, step: int, epoch: int, lr: float) -> dict[str, Any]:
        """The ``train`` log record (means over the window), and start a new window."""
        elapsed = self.elapsed()
        self.last_loss = sum(self._losses) / len(self._losses) if self._losses else float("nan")
        means = {key: sum(values) / len(values) for key, values in self._stats.items()}
        self._losses, self._stats = [], defaultdict(list)
        return {"event": "train", "step": step, "epoch": epoch, "loss": self.last_loss, "lr": lr, **means,
                "examples": self.examples, "elapsed_s": elapsed,
                "examples_per_s": (self.examples - self.resumed_examples) / elapsed}

    def summary(self, steps: int, epochs: float) -> dict[str, Any]:
        """The run's totals; ``epochs`` counts a last partial epoch as its fraction (e.g. 0.5 after half an epoch)."""
        elapsed = self.elapsed()
        new_examples = self.examples - self.resumed_examples
        return {"steps": steps, "epochs": epochs, "examples": self.examples, "final_loss": self.last_loss,
                "nonfinite_batches": self.nonfinite, "train_runtime_s": round(elapsed, 2),
                "examples_per_s": round(new_examples / elapsed, 3) if elapsed > 0 else None}
