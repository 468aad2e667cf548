"""One training batch: encode -> loss -> backward (plainly, or through the gradient cache); and the log window."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from torch import Tensor

from sbert_triplet.training.batching import embed_batch
from sbert_triplet.training.grad_cache import grad_cache_backward
from sbert_triplet.training.objective import Objective


def backward_batch(model, objective: Objective, batch: dict[str, Any], accelerator,
                   mini_batch_size: int | None) -> Tensor:
    """Encode ``batch``, compute the loss and backpropagate it; return the loss, detached.

    With ``mini_batch_size`` (M < B), the gradient cache encodes M rows at a time and gives
    the same loss and gradients as one big batch (:mod:`~sbert_triplet.training.grad_cache`).
    Backward goes through ``accelerator.backward`` either way (gradient accumulation scaling).
    """
    loss_from_embeddings = objective.loss_from_embeddings(batch)
    if mini_batch_size is not None:
        return grad_cache_backward(model, batch["features"], mini_batch_size, loss_from_embeddings,
                                   device=accelerator.device, accelerator=accelerator)
    embeddings = embed_batch(model, batch["features"], accelerator.device)  # {column: (B, D)}
    loss = loss_from_embeddings(embeddings)  # ()
    accelerator.backward(loss)
    return loss.detach()


class LogWindow:
    """Losses and loss counts of the batches since the last log line, and running totals."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_s = 0.0
        self.examples = 0
        self.last_loss = float("nan")
        self._losses: list[float] = []
        self._stats: dict[str, list[float]] = defaultdict(list)

    def add(self, loss: Tensor, stats: dict[str, float], rows: int) -> None:
        self._losses.append(loss.item())
        for key, value in stats.items():
            self._stats[key].append(value)
        self.examples += rows

    def elapsed(self) -> float:
        """Training seconds so far, evaluation time excluded."""
        return time.perf_counter() - self.start - self.eval_s

    def record(self, step: int, epoch: int, lr: float) -> dict[str, Any]:
        """The ``train`` log record (means over the window), and start a new window."""
        elapsed = self.elapsed()
        self.last_loss = sum(self._losses) / len(self._losses)
        means = {key: sum(values) / len(values) for key, values in self._stats.items()}
        self._losses, self._stats = [], defaultdict(list)
        return {"event": "train", "step": step, "epoch": epoch, "loss": self.last_loss, "lr": lr, **means,
                "examples": self.examples, "elapsed_s": elapsed, "examples_per_s": self.examples / elapsed}

    def summary(self, steps: int, epochs: int) -> dict[str, Any]:
        elapsed = self.elapsed()
        return {"steps": steps, "epochs": epochs, "examples": self.examples, "final_loss": self.last_loss,
                "train_runtime_s": round(elapsed, 2),
                "examples_per_s": round(self.examples / elapsed, 3) if elapsed > 0 else None}
