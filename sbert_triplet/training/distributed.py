"""Negatives across devices: every process's rows become in-batch negatives for all of them.

With ``P`` processes of ``B`` rows each, an in-batch-negative loss (MNR, the label losses,
the ladder) on its own process sees only ``B`` rows. With ``--gather-across-devices`` each
step

1. gathers the batch's texts and labels from every process (:func:`gather_batch`), so
   false-negative masks, labels and counts are those of the global batch of ``P * B`` rows;
2. packs the process's embeddings as one ``[anchor | positive | negative_1 .. negative_K]``
   block of ``(C * B, D)`` rows (``C`` columns), all-gathers the blocks with a
   gradient-preserving gather (:class:`_AllGatherWithGrad`), and unpacks the ``P`` blocks
   back into columns in process order (:func:`gather_embeddings`): process ``r``'s row
   ``i`` becomes global row ``r * B + i`` of every column. The candidates of MNR are then all
   ``P * B`` positives followed by all ``P * B * K`` hard negatives row-major, and anchor
   ``r * B + i`` has label ``r * B + i``: exactly the layout of one process holding the
   global batch (unpacking the per-device blocks is what makes the labels right; treating
   the gathered ``(P * C * B, D)`` tensor as one global block would mislabel every row
   after the first block);
3. computes the loss of the global batch, the same value on every process.

Gradient: every process computes the same global loss ``L``, so the gather's backward sums
the incoming gradients over processes (an all-reduce) and keeps this process's rows, i.e.
``P * dL/de_r``; DistributedDataParallel then averages the parameter gradients over the
``P`` processes, which gives ``sum_r J_r^T dL/de_r``, the single-process gradient of ``L``
on the global batch. No further scaling is needed (checked to 1e-5 against one process
holding all rows in tests/test_distributed.py). The price is that every process computes
the ``(P*B) x (P*B*(1+K))`` similarity matrix, which is small next to the encoder.

Works with any backend (gloo on CPU, NCCL on GPU) and composes with the gradient cache,
whose loss closure sees embeddings only. All processes must hold the same number of rows
(in-batch losses drop incomplete batches, and Accelerate shards batches evenly).

Reference: the cross-device negatives of Qu et al. 2021, "RocketQA" (Section 4.2), and
sentence-transformers' ``gather_across_devices`` option.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sbert_triplet.errors import ConfigError


def make_accelerator(config):
    """Accelerate with the run's precision; the LR schedule steps once per optimizer step (done by the loop).

    Several processes: DDP with ``find_unused_parameters=True``, because a sentence-transformers
    encoder holds weights no loss reaches (BERT's pooler under mean pooling), and DDP would
    otherwise stop at the second step waiting for their gradients; and ``broadcast_buffers=False``,
    because DDP broadcasts buffers at *every* forward call and the processes make different
    numbers of calls per step (length-bucketed chunks depend on the texts), which deadlocks
    (the encoder's buffers, e.g. position ids, are constants).

    On a machine without a GPU, a multi-process launch (``WORLD_SIZE`` > 1) gets ``cpu=True``:
    without it Accelerate 1.15 sets up no process group there and every process would train
    alone.

    Raises:
        ConfigError: ``fp16`` on a CPU (Accelerate has no fp16 autocast or scaler there); a
            multi-process launch that Accelerate did not set up as one.
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs, PartialState
    from accelerate.state import AcceleratorState

    optim = config.optim
    precision = "bf16" if optim.bf16 else "fp16" if optim.fp16 else "no"
    launched = int(os.environ.get("WORLD_SIZE", "1"))  # processes torchrun / accelerate launch started
    cpu = launched > 1 and not torch.cuda.is_available()  # Accelerate sets up gloo on CPU only when told cpu=True
    if optim.fp16 and PartialState(cpu=cpu).device.type == "cpu":
        raise ConfigError("--fp16 needs a GPU: Accelerate runs fp16 autocast and its gradient scaler on CUDA (or "
                          "XPU, NPU, MLU, MPS ...), and on a CPU it would silently train in fp32; use --bf16 on CPU")
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != precision:
        AcceleratorState._reset_state()  # a second train() in this process with another precision (process group kept)
    accelerator = Accelerator(cpu=cpu, mixed_precision=precision, step_scheduler_with_optimizer=False,
                              gradient_accumulation_steps=optim.gradient_accumulation_steps,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True,
                                                                             broadcast_buffers=False)])
    if optim.bf16 and accelerator.device.type == "cpu" and not cpu_has_bf16():
        warnings.warn("--bf16 on a CPU without bf16 units (no avx512_bf16 / amx_bf16 flag in /proc/cpuinfo): "
                      "autocast will emulate bf16 and train slower than fp32; use --no-bf16", UserWarning, stacklevel=3)
    if accelerator.num_processes != launched:
        raise ConfigError(f"launched as {launched} processes (WORLD_SIZE) but Accelerate set up "
                          f"{accelerator.num_processes}: each process would train alone on the same output folder; "
                          f"launch with torchrun --nproc_per_node N or accelerate launch")
    return accelerator


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 matmuls natively (AVX-512 BF16 or AMX-BF16); False when unknown."""
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def scale_report(config, accelerator) -> dict[str, Any]:
    """Processes, global batch size (rows per step over all processes), rows per optimizer step, and the
    in-batch pool each anchor is ranked against (the global batch with gathering, else the local one)."""
    processes = accelerator.num_processes
    pool = config.optim.batch_size * (processes if config.loss.gather_across_devices else 1)
    return {"processes": processes, "global_batch_size": config.optim.batch_size * processes,
            "rows_per_optimizer_step": config.optim.batch_size * processes * config.optim.gradient_accumulation_steps,
            "in_batch_pool": pool, "gather_across_devices": config.loss.gather_across_devices,
            "mixed_precision": accelerator.mixed_precision}


def world_size() -> int:
    """Processes in the default group (1 when torch.distributed is not initialised)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums gradients over processes and keeps this process's slice."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # (N, D) -> (P*N, D)
        import torch.distributed as dist

        ctx.rank, ctx.rows = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)  # (P*N, D)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # (P*N, D) -> (N, D)
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every process's dL/d(all rows), summed
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]  # (N, D)


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` (N, D) of every process in rank order -> (P*N, D), gradients kept.

    The backward pass all-reduces (sums) the gradient of the gathered tensor and returns the
    rows of this process. Identity when only one process runs.
    """
    if world_size() == 1:
        return tensor
    return _AllGatherWithGrad.apply(tensor)


def gather_embeddings(embeddings: dict[str, Tensor]) -> dict[str, Tensor]:
    """Gather ``{column: (B, D)}`` from every process into ``{column: (P*B, D)}`` in process order.

    One collective: the columns are packed as one per-device block ``(C*B, D)``; the gathered
    ``(P*C*B, D)`` is unpacked block by block, so process r's row i is global row ``r*B + i``.
    """
    processes = world_size()
    if processes == 1:
        return embeddings
    columns = list(embeddings)
    rows, dim = embeddings[columns[0]].shape
    block = torch.cat([embeddings[c] for c in columns], dim=0)  # (C*B, D): [anchor | positive | negatives]
    gathered = all_gather_with_grad(block)  # (P*C*B, D)
    per_device = gathered.view(processes, len(columns), rows, dim)  # (P, C, B, D)
    return {c: per_device[:, j].reshape(processes * rows, dim) for j, c in enumerate(columns)}  # {c: (P*B, D)}


def gather_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """The global batch of every process's rows, in process order: ``texts`` and ``labels`` gathered.

    Features are not gathered (each process encodes its own rows). Identity with one process.

    Raises:
        ConfigError: processes hold different numbers of rows (the gathered blocks would not line up).
    """
    processes = world_size()
    if processes == 1:
        return batch
    import torch.distributed as dist

    texts = batch["texts"]
    parts: list[Any] = [None] * processes
    dist.all_gather_object(parts, texts)
    sizes = [len(next(iter(t.values()))) for t in parts]
    if len(set(sizes)) != 1:
        raise ConfigError(f"--gather-across-devices needs the same batch size on every process, got {sizes}: "
                          "use an in-batch-negative loss (incomplete batches are dropped) or a dataset with at "
                          "least processes x batch size rows")
    merged = {"texts": {col: [t for part in parts for t in part[col]] for col in texts}}
    if "labels" in batch:
        labels = batch["labels"]  # (B,)
        pieces = [torch.empty_like(labels) for _ in range(processes)]
        dist.all_gather(pieces, labels.contiguous())
        merged["labels"] = torch.cat(pieces)  # (P*B,)
    return {**batch, **merged}


def gathered_loss(loss_from_embeddings: Callable[[dict[str, Tensor]], Tensor]) -> Callable[[dict[str, Tensor]], Tensor]:
    """Wrap a global-batch loss closure so it takes this process's ``{column: (B, D)}`` embeddings."""
    return lambda embeddings: loss_from_embeddings(gather_embeddings(embeddings))
