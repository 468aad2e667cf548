"""The training loop, with Hugging Face Accelerate. It reads top to bottom:

prepare -> evaluate (before) -> epoch -> accumulate -> encode -> loss -> backward
-> clip -> step -> log / evaluate every N steps -> evaluate (after) -> save.

"encode -> loss -> backward" is one call (:func:`~sbert_triplet.training.step.backward_batch`):
a plain forward of each column, or the gradient cache when ``--mini-batch-size`` is below
the batch size (same loss and gradients, less memory). With ``--gradient-accumulation-steps
N`` the optimizer steps every N batches; for in-batch-negative losses that adds no
negatives (warned once): the gradient cache is the way to bigger in-batch pools.

Outputs in ``output_dir``: the model in sentence-transformers format (loads with a plain
``SentenceTransformer(output_dir)``), ``metrics.json`` (evaluations before and after
training, and training figures), ``train_log.jsonl`` (one JSON object per event) and
``train_config.json`` (the resolved configuration).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sbert_triplet.config import TrainConfig
from sbert_triplet.errors import ConfigError
from sbert_triplet.training.data_setup import load_train_data, make_loader
from sbert_triplet.training.io import JsonlLogger, write_json_atomic
from sbert_triplet.training.objective import Objective, accumulation_warning, build_objective
from sbert_triplet.training.optim import build_optimizer, build_scheduler
from sbert_triplet.training.step import LogWindow, backward_batch


@dataclass
class _Run:
    """Everything the step loop touches, prepared by Accelerate."""

    config: TrainConfig
    accelerator: Any
    model: Any
    objective: Objective
    loader: Any
    optimizer: Any
    scheduler: Any
    total_steps: int
    evaluators: list
    log: JsonlLogger


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
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from sbert_triplet.evaluation.build import build_evaluators
    from sbert_triplet.models import ends_with_normalize

    accelerator = Accelerator(mixed_precision="bf16" if config.optim.bf16 else "no",
                              gradient_accumulation_steps=config.optim.gradient_accumulation_steps)
    set_seed(config.optim.seed)
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir {out} exists and is not a folder: choose a folder path")
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
    log = JsonlLogger(out / "train_log.jsonl", enabled=accelerator.is_main_process)
    log.write({"event": "start", "config": config.to_dict(), "data": report, "loss": repr(objective.loss_fn),
               "grad_cache": config.uses_grad_cache})
    _warn_about_accumulation(config, log)

    before = run_evaluators(model, evaluators, accelerator) if config.eval.eval_before else {}
    log.write({"event": "eval", "step": 0, "metrics": before})

    run = _prepare(config, accelerator, model, objective, loader, evaluators, log)
    stats = _train_steps(run)

    after = run_evaluators(run.model, evaluators, accelerator)
    log.write({"event": "eval", "step": stats["steps"], "metrics": after})
    metrics = {"before": before, "after": after, "train": stats, "data": report}
    if accelerator.is_main_process:
        accelerator.unwrap_model(run.model).save_pretrained(str(out), create_model_card=False)
        write_json_atomic(out / "train_config.json", config.to_dict())
        write_json_atomic(out / "metrics.json", metrics)
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
    steps_per_epoch = math.ceil(len(loader) / config.optim.gradient_accumulation_steps)
    total_steps = config.optim.max_steps or config.optim.epochs * steps_per_epoch
    optimizer = build_optimizer(model, config.optim)
    scheduler = build_scheduler(optimizer, config.optim, total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    return _Run(config, accelerator, model, objective, loader, optimizer, scheduler, total_steps, evaluators, log)


def _train_steps(run: _Run) -> dict[str, Any]:
    from tqdm.auto import tqdm

    optim = run.config.optim
    mini_batch_size = optim.mini_batch_size if run.config.uses_grad_cache else None
    window, step, epoch = LogWindow(), 0, 0
    bar = tqdm(total=run.total_steps, desc="train", disable=not run.accelerator.is_local_main_process)
    run.model.train()
    while step < run.total_steps and (optim.max_steps or epoch < optim.epochs):
        run.loader.set_epoch(epoch)  # the no-duplicates and pk samplers draw new batches each epoch
        epoch_start = step
        for batch in run.loader:
            with run.accelerator.accumulate(run.model):
                loss = backward_batch(run.model, run.objective, batch, run.accelerator, mini_batch_size)
                _optimizer_step(run)  # clip -> step -> zero_grad, only once N batches are accumulated
            window.add(loss, run.objective.stats(batch), rows=len(next(iter(batch["texts"].values()))))
            if not run.accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            _log_and_evaluate(run, window, step, epoch, bar)
            if step >= run.total_steps:
                break
        epoch += 1
        if step == epoch_start:  # an epoch without a batch would loop forever
            break
    bar.close()
    return window.summary(step, epoch)


def _optimizer_step(run: _Run) -> None:
    """Clip and step; Accelerate's wrappers skip all of it until the accumulation is complete."""
    if run.accelerator.sync_gradients and run.config.optim.max_grad_norm > 0:
        run.accelerator.clip_grad_norm_(run.model.parameters(), run.config.optim.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


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
        window.eval_s += time.perf_counter() - t0
