"""The training loop, with Hugging Face Accelerate. It reads top to bottom:

prepare -> evaluate (before) -> epoch -> encode -> loss -> backward -> clip -> step
-> log / evaluate every N steps -> evaluate (after) -> save.

Outputs in ``output_dir``: the model in sentence-transformers format (loads with a plain
``SentenceTransformer(output_dir)``), ``metrics.json`` (evaluations before and after
training, and training figures), ``train_log.jsonl`` (one JSON object per event) and
``train_config.json`` (the resolved configuration).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from sbert_triplet.config import IN_BATCH_NEGATIVE_LOSSES, TrainConfig
from sbert_triplet.errors import ConfigError
from sbert_triplet.training.batching import RowCollator, embed_batch, negative_columns, split_embeddings
from sbert_triplet.training.io import JsonlLogger, write_json_atomic
from sbert_triplet.training.optim import build_optimizer, build_scheduler


def _build_loss(config: TrainConfig, num_negatives: int, normalized: bool):
    from sbert_triplet.losses import build_loss

    cfg = config.loss
    if cfg.loss == "triplet":
        if num_negatives == 0:
            raise ConfigError(
                "the triplet loss needs a negative column (negative or negative_1..k); "
                "this data has only anchor/positive: use --loss mnr, or map a column with --columns negative=<name>"
            )
        loss = build_loss("triplet", distance=cfg.distance, margin=cfg.margin)
        loss.check_margin(normalized=normalized)
        return loss
    return build_loss("mnr", scale=cfg.scale)


def _make_loader(dataset, model, config: TrainConfig):
    from torch.utils.data import DataLoader

    drop_last = config.loss.loss in IN_BATCH_NEGATIVE_LOSSES
    batch_size = config.optim.batch_size
    if drop_last and len(dataset) < batch_size:
        raise ConfigError(
            f"{len(dataset)} training rows is fewer than one batch of {batch_size}; incomplete batches are "
            f"dropped for in-batch-negative losses: lower --batch-size"
        )
    generator = torch.Generator().manual_seed(config.optim.seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        drop_last=drop_last,
        collate_fn=RowCollator(model.preprocess, dataset.column_names),
    )


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
        train_dataset: an in-memory canonical ``datasets.Dataset`` (default: load ``config.data``).
        evaluators: a list of evaluators (default: built from ``config.eval``).

    Raises:
        ConfigError, DataSchemaError, ModelNotFoundError: bad options, data or model.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from sbert_triplet.data import load_training_data
    from sbert_triplet.evaluation.build import build_evaluators
    from sbert_triplet.models import ends_with_normalize, load_model

    accelerator = Accelerator(mixed_precision="bf16" if config.optim.bf16 else "no")
    set_seed(config.optim.seed)
    report: dict[str, Any] = {"kind": "in-memory", "rows": None}
    if train_dataset is None:
        train_dataset, report = load_training_data(
            config.data.train, split=config.data.train_split, columns=config.data.columns,
            drop_invalid=config.data.drop_invalid,
        )
    report["rows"] = len(train_dataset)
    if evaluators is None:  # data errors surface before the (slow) model load
        evaluators = build_evaluators(config.eval)
    if model is None:
        model = load_model(config.model, device=str(accelerator.device), max_seq_length=config.optim.max_seq_length)
    elif config.optim.max_seq_length is not None:
        model.max_seq_length = config.optim.max_seq_length
    num_negatives = len(negative_columns(train_dataset.column_names))
    loss_fn = _build_loss(config, num_negatives, normalized=ends_with_normalize(model))
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = JsonlLogger(out / "train_log.jsonl", enabled=accelerator.is_main_process)
    log.write({"event": "start", "config": config.to_dict(), "data": report, "loss": repr(loss_fn)})

    before = run_evaluators(model, evaluators, accelerator)
    log.write({"event": "eval", "step": 0, "metrics": before})

    loader = _make_loader(train_dataset, model, config)
    steps_per_epoch = len(loader)
    total_steps = config.optim.max_steps or config.optim.epochs * steps_per_epoch
    optimizer = build_optimizer(model, config.optim)
    scheduler = build_scheduler(optimizer, config.optim, total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    stats = _train_steps(model, loss_fn, loader, optimizer, scheduler, accelerator, config, total_steps,
                         evaluators, log)

    after = run_evaluators(model, evaluators, accelerator)
    log.write({"event": "eval", "step": stats["steps"], "metrics": after})
    metrics = {"before": before, "after": after, "train": stats, "data": report}
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(str(out), create_model_card=False)
        write_json_atomic(out / "train_config.json", config.to_dict())
        write_json_atomic(out / "metrics.json", metrics)
    log.write({"event": "end", **stats})
    accelerator.wait_for_everyone()
    return metrics


def _train_steps(model, loss_fn, loader, optimizer, scheduler, accelerator, config, total_steps, evaluators, log):
    from tqdm.auto import tqdm

    model.train()
    step, examples, window, last_loss, eval_s = 0, 0, [], float("nan"), 0.0
    start = time.perf_counter()
    epochs = math.ceil(total_steps / len(loader))
    bar = tqdm(total=total_steps, desc="train", disable=not accelerator.is_local_main_process)
    for epoch in range(epochs):
        for batch in loader:
            embeddings = embed_batch(model, batch, accelerator.device)  # {column: (B, D)}
            anchor, positive, negatives = split_embeddings(embeddings)
            loss = loss_fn(anchor.float(), positive.float(), None if negatives is None else negatives.float())
            accelerator.backward(loss)
            if config.optim.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            examples += anchor.shape[0]
            window.append(loss.item())
            bar.update(1)
            if step % config.log_steps == 0 or step == total_steps:
                elapsed = time.perf_counter() - start - eval_s
                last_loss = sum(window) / len(window)
                bar.set_postfix(loss=f"{last_loss:.4f}")
                log.write({"event": "train", "step": step, "epoch": epoch, "loss": last_loss,
                           "lr": scheduler.get_last_lr()[0], "examples": examples, "elapsed_s": elapsed,
                           "examples_per_s": examples / elapsed})
                window = []
            if config.eval.eval_steps and step % config.eval.eval_steps == 0 and step < total_steps:
                t0 = time.perf_counter()
                log.write({"event": "eval", "step": step, "metrics": run_evaluators(model, evaluators, accelerator)})
                eval_s += time.perf_counter() - t0
            if step >= total_steps:
                break
        if step >= total_steps:
            break
    bar.close()
    elapsed = time.perf_counter() - start - eval_s
    return {"steps": step, "epochs": epochs, "examples": examples, "final_loss": last_loss,
            "train_runtime_s": round(elapsed, 2),
            "examples_per_s": round(examples / elapsed, 3) if elapsed > 0 else None}
