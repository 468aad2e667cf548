"""The training loop, with Hugging Face Accelerate. It reads top to bottom:

prepare -> evaluate (before) | resume -> epoch -> accumulate -> encode -> loss -> backward
-> clip -> step -> log / evaluate every N steps -> checkpoint every N steps -> evaluate
(after) -> save.

"encode -> loss -> backward" is one call (:func:`~sbert_triplet.training.step.backward_batch`):
a plain forward of each column, or the gradient cache when ``--mini-batch-size`` is below
the batch size (same loss and gradients, less memory). With ``--gradient-accumulation-steps
N`` the optimizer steps every N batches; for in-batch-negative losses that adds no
negatives (warned once): the gradient cache is the way to bigger in-batch pools.

Several processes (``torchrun --nproc_per_node P -m sbert_triplet.cli train ...`` or
``accelerate launch``): DistributedDataParallel, each process taking every P-th batch of
the one sampler order; ``--gather-across-devices`` makes every process's rows negatives for
all (:mod:`~sbert_triplet.training.distributed`). Evaluation and the final save run on the
main process only. ``--save-steps N`` writes crash-safe checkpoints and
``--resume-from-checkpoint DIR|latest`` continues with exactly the batches, learning rates
and RNG states of the uninterrupted run (:mod:`~sbert_triplet.training.checkpoint`). A step
whose loss or gradient is not finite is skipped and logged; ``--max-nonfinite-steps`` in a
row stop the run with :class:`~sbert_triplet.errors.NonFiniteLossError`.

Outputs in ``output_dir``: the model in sentence-transformers format (loads with a plain
``SentenceTransformer(output_dir)``), ``metrics.json`` (evaluations before and after
training, and training figures), ``train_log.jsonl`` (one JSON object per event) and
``train_config.json`` (the resolved configuration).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sbert_triplet.config import TrainConfig
from sbert_triplet.errors import ConfigError
from sbert_triplet.training.checkpoint import (TrainerState, check_resumable, checkpoint_root, list_checkpoints,
                                               resolve_checkpoint, save_checkpoint)
from sbert_triplet.training.data_setup import load_train_data, make_loader
from sbert_triplet.training.distributed import gather_batch, make_accelerator, scale_report
from sbert_triplet.training.fast_dropout import fast_cpu_dropout
from sbert_triplet.training.io import JsonlLogger
from sbert_triplet.training.objective import Objective, accumulation_warning, build_objective
from sbert_triplet.training.optim import build_optimizer, build_scheduler
from sbert_triplet.training.step import (LogWindow, backward_batch, guarded_update, report_nonfinite,
                                         true_on_every_process)


@dataclass
class _Run:
    """Everything the step loop touches, prepared by Accelerate."""

    config: TrainConfig
    accelerator: Any
    model: Any
    objective: Objective
    loader: Any
    sampler: Any  # the batch sampler itself: Accelerate does not pass set_epoch to it across processes
    optimizer: Any
    scheduler: Any
    total_steps: int
    evaluators: list
    log: JsonlLogger
    state: TrainerState


def run_evaluators(model, evaluators, accelerator) -> dict[str, float]:
    """Run every evaluator on the unwrapped model in eval mode; keys are ``name/metric``."""
    results: dict[str, float] = {}
    if not accelerator.is_main_process or not evaluators:
        return results
    encoder = accelerator.unwrap_model(model)
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        for evaluator in evaluators:
            for key, value in evaluator(encoder).items():
                results[f"{evaluator.name}/{key}"] = float(value)
    encoder.train(was_training)
    return results


def train(config: TrainConfig, *, model=None, train_dataset=None, evaluators=None) -> dict[str, Any]:
    """Fine-tune a sentence encoder as configured and return the contents of ``metrics.json``.

    Args:
        config: the run configuration.
        model: an in-memory SentenceTransformer (default: load ``config.model``).
        train_dataset: an in-memory ``datasets.Dataset`` in the schema the loss reads
            (default: load ``config.data``): ``anchor, positive, negative_1..k``; ``text,
            label`` for label losses; ``anchor, positive, score`` for the ladder loss.
        evaluators: a list of evaluators (default: built from ``config.eval``).

    Raises:
        ConfigError, DataSchemaError, ModelNotFoundError: bad options, data or model.
        NonFiniteLossError: ``max_nonfinite_steps`` steps in a row had a non-finite loss or gradient.
    """
    from accelerate.utils import set_seed

    from sbert_triplet.evaluation.build import build_evaluators
    from sbert_triplet.models import ends_with_normalize

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # DataLoader workers fork after the tokenizer ran
    accelerator = make_accelerator(config)
    set_seed(config.optim.seed)
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir {out} exists and is not a folder: choose a folder path")
    resume = config.checkpoint.resume_from_checkpoint
    resume = resolve_checkpoint(resume, out) if resume else None
    config, model, mining = _mine_first(config, model, train_dataset, accelerator)
    report: dict[str, Any] = {"kind": "in-memory", "rows": None}
    if train_dataset is None:
        train_dataset, report = load_train_data(config)
    report["rows"] = len(train_dataset)
    if mining:
        report["mining"] = mining
    objective = build_objective(config, train_dataset.column_names)
    if evaluators is None:  # data and option errors surface before the (slow) model load
        evaluators = build_evaluators(config.eval)
    model = _load_model(config, model, accelerator)
    objective.check_margin(normalized=ends_with_normalize(model))
    loader = make_loader(train_dataset, model, config)  # sampler errors surface before the first evaluation
    out.mkdir(parents=True, exist_ok=True)
    log = JsonlLogger(out / "train_log.jsonl", enabled=accelerator.is_main_process, append=resume is not None)
    log.write({"event": "start", "config": config.to_dict(), "data": report, "loss": repr(objective.loss_fn),
               "grad_cache": config.uses_grad_cache, **scale_report(config, accelerator)})
    _warn_about_accumulation(config, log)

    run = _prepare(config, accelerator, model, objective, loader, evaluators, log)
    if resume is None:
        before = run_evaluators(run.model, evaluators, accelerator) if config.eval.eval_before else {}
        log.write({"event": "eval", "step": 0, "metrics": before})
        run.state.before = before
    else:
        _resume(run, resume)
        before = run.state.before
    with fast_cpu_dropout(run.model, enabled=config.optim.fast_dropout and accelerator.device.type == "cpu"):
        stats = _train_steps(run)

    after = run_evaluators(run.model, evaluators, accelerator)
    log.write({"event": "eval", "step": stats["steps"], "metrics": after})
    metrics = {"before": before, "after": after, "train": stats, "data": report}
    if accelerator.is_main_process:  # model (safetensors), train_config.json, metrics.json, README.md; push
        from sbert_triplet.hub.save import save_run

        save_run(accelerator.unwrap_model(run.model), out, config, metrics, log=log,
                 num_processes=accelerator.num_processes)
    log.write({"event": "end", **stats})
    accelerator.wait_for_everyone()
    return metrics


def _mine_first(config: TrainConfig, model, train_dataset, accelerator):
    """``--mine-negatives K``: mine hard negatives with the base model and train on them; else
    the mining report of a file written by ``sbert-triplet mine`` (``None`` if none)."""
    from sbert_triplet.mining.before_training import mine_before_training, mining_report_for

    if train_dataset is not None:
        return config, model, None
    if not config.mining.mine_negatives:
        return config, model, mining_report_for(config.data.train)
    model = _load_model(config, model, accelerator)
    config, mining = mine_before_training(config, model, accelerator.is_main_process, accelerator.wait_for_everyone)
    return config, model, mining


def _load_model(config: TrainConfig, model, accelerator):
    from sbert_triplet.models import load_model

    if model is None:
        model = load_model(config.model, device=str(accelerator.device), max_seq_length=config.optim.max_seq_length)
    elif config.optim.max_seq_length is not None:
        model.max_seq_length = config.optim.max_seq_length
    return model


def _warn_about_accumulation(config: TrainConfig, log: JsonlLogger) -> None:
    message = accumulation_warning(config)
    if message:
        warnings.warn(message, UserWarning, stacklevel=3)
        log.write({"event": "warning", "message": message})


def _prepare(config: TrainConfig, accelerator, model, objective, loader, evaluators, log) -> _Run:
    sampler = loader.batch_sampler
    optimizer = build_optimizer(model, config.optim)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / config.optim.gradient_accumulation_steps)  # this process's share
    total_steps = config.optim.max_steps or config.optim.epochs * steps_per_epoch
    scheduler = accelerator.prepare(build_scheduler(optimizer, config.optim, total_steps))
    state = TrainerState(num_processes=accelerator.num_processes, batch_size=config.optim.batch_size,
                         seed=config.optim.seed, total_steps=total_steps)
    accelerator.register_for_checkpointing(state)
    return _Run(config, accelerator, model, objective, loader, sampler, optimizer, scheduler, total_steps,
                evaluators, log, state)


def _resume(run: _Run, folder: Path) -> None:
    """Load every saved state (model, optimizer, scheduler, scaler, RNGs, TrainerState) from ``folder``."""
    run.accelerator.load_state(str(folder))
    optim = run.config.optim
    check_resumable(run.state, run.accelerator.num_processes, optim.batch_size, optim.seed, folder,
                    run.total_steps)
    run.log.write({"event": "resume", "from": str(folder), "step": run.state.step, "epoch": run.state.epoch,
                   "batches_in_epoch": run.state.batches_in_epoch})


def _epoch_batches(run: _Run):
    """This process's batches of ``run.state.epoch``, from ``batches_in_epoch`` on (exact mid-epoch resume)."""
    state, processes = run.state, run.accelerator.num_processes
    run.loader.set_epoch(state.epoch)  # Accelerate's own epoch counter (it re-sets the sampler's)
    run.sampler.set_epoch(state.epoch)  # the no-duplicates, pk and random samplers draw new batches per epoch
    run.sampler.resume_at(state.batches_in_epoch * processes)  # the sampler order is global: P batches per step
    iterator = iter(run.loader)
    devices = [run.accelerator.device] if run.accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # starting a DataLoader draws a seed from the global RNG:
        first = next(iterator, None)  # keep that out of the dropout stream so a resumed run draws the same
    if first is not None:
        yield first
        yield from iterator


def _train_steps(run: _Run) -> dict[str, Any]:
    from tqdm.auto import tqdm

    optim, state = run.config.optim, run.state
    mini_batch_size = optim.mini_batch_size if run.config.uses_grad_cache else None
    gather = run.config.loss.gather_across_devices
    window = LogWindow()
    window.examples = window.resumed_examples = state.examples
    bar = tqdm(total=run.total_steps, initial=state.step, desc="train",
               disable=not run.accelerator.is_local_main_process)
    run.model.train()
    losses_ok = True
    while state.step < run.total_steps and (optim.max_steps or state.epoch < optim.epochs):
        fresh_epoch, taken = state.batches_in_epoch == 0, 0
        for batch in _epoch_batches(run):
            taken += 1
            pool = gather_batch(batch) if gather else batch  # the rows the loss sees
            with run.accelerator.accumulate(run.model):
                loss = backward_batch(run.model, run.objective, batch, run.accelerator, mini_batch_size,
                                      pool=pool if gather else None)
            losses_ok &= math.isfinite(loss.item())
            state.batches_in_epoch += 1
            rows = len(next(iter(pool["texts"].values()))) * (1 if gather else run.accelerator.num_processes)
            window.add(_mean_over_processes(loss, run, gather), run.objective.stats(pool), rows=rows)
            if not run.accelerator.sync_gradients:
                continue
            state.step += 1
            _update(run, losses_ok, batch)
            losses_ok = True
            if run.accelerator.gradient_state.end_of_dataloader:
                state.epoch, state.batches_in_epoch = state.epoch + 1, 0
            state.examples = window.examples
            bar.update(1)
            _log_and_evaluate(run, window, state.step, state.epoch, bar)
            _maybe_checkpoint(run)
            if state.step >= run.total_steps:
                break
        if taken == 0 and fresh_epoch:  # an epoch without a batch would loop forever
            break
        if taken == 0:  # resumed at the very end of an epoch: nothing left of it
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0
    bar.close()
    per_epoch = len(run.loader)  # this process's batches per epoch
    fraction = round(state.batches_in_epoch / per_epoch, 2) if per_epoch else 0  # of a last, partial epoch
    epochs = state.epoch + fraction if fraction else state.epoch
    summary = window.summary(state.step, epochs)
    summary["nonfinite_steps"] = state.nonfinite_steps
    return summary


def _mean_over_processes(loss, run: _Run, gather: bool):
    """The loss to log: with gathering every process already has the global one; else their mean."""
    if gather or run.accelerator.num_processes == 1:
        return loss
    return run.accelerator.reduce(loss.reshape(1), reduction="mean")[0]


def _update(run: _Run, losses_ok: bool, batch) -> None:
    """Optimizer step unless a loss or gradient was non-finite; count, report and stop after too many."""
    outcome = guarded_update(run.accelerator, run.model, run.optimizer, run.scheduler, run.config.optim.max_grad_norm,
                             true_on_every_process(losses_ok, run.accelerator))
    if outcome != "nonfinite":
        run.state.nonfinite_in_row = 0
        return
    run.state.nonfinite_steps += 1
    run.state.nonfinite_in_row += 1
    report_nonfinite(run.state, batch, run.log, run.config.checkpoint.max_nonfinite_steps,
                     list_checkpoints(checkpoint_root(run.config.output_dir)))


def _maybe_checkpoint(run: _Run) -> None:
    """Every ``save_steps`` steps, unless this step was skipped as non-finite (the last good checkpoint stays)."""
    every = run.config.checkpoint.save_steps
    if not every or run.state.step % every:
        return
    if run.state.nonfinite_in_row:
        run.log.write({"event": "checkpoint-skipped", "step": run.state.step, "reason": "non-finite step"})
        return
    folder = save_checkpoint(run.accelerator, run.config.output_dir, run.state, run.config.checkpoint.save_total_limit)
    run.log.write({"event": "checkpoint", "step": run.state.step, "path": str(folder)})


def _log_and_evaluate(run: _Run, window: LogWindow, step: int, epoch: int, bar) -> None:
    if step % run.config.log_steps == 0 or step == run.total_steps:
        record = window.record(step, epoch, run.scheduler.get_last_lr()[0])
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        run.log.write(record)
    eval_steps = run.config.eval.eval_steps
    if eval_steps and step % eval_steps == 0 and step < run.total_steps:
        t0 = time.perf_counter()
        run.log.write({"event": "eval", "step": step, "metrics": run_evaluators(run.model, run.evaluators,
                                                                                run.accelerator)})
        run.accelerator.wait_for_everyone()  # evaluation runs on the main process only
        window.eval_s += time.perf_counter() - t0
