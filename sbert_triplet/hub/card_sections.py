"""Card sections built from the run's records: training procedure, mining, evaluation.

Every value comes from ``train_config.json`` / ``metrics.json``; keys a section does not
know are still listed (under their own name), so nothing the run recorded is hidden.
"""

from __future__ import annotations

from typing import Any

# Metric key (after the evaluator's "name/") -> (model-index task type, task name, display name).
_TASKS = {
    "ndcg": ("information-retrieval", "Information Retrieval", "nDCG"),
    "mrr": ("information-retrieval", "Information Retrieval", "MRR"),
    "recall": ("information-retrieval", "Information Retrieval", "Recall"),
    "precision": ("information-retrieval", "Information Retrieval", "Precision"),
    "map": ("information-retrieval", "Information Retrieval", "MAP"),
    "spearman": ("semantic-similarity", "Semantic Similarity", "Spearman"),
    "pearson": ("semantic-similarity", "Semantic Similarity", "Pearson"),
    "accuracy": ("triplet", "Triplet", "Accuracy"),
}
_TRAIN_LABELS = {
    "steps": "Optimizer steps", "epochs": "Epochs", "examples": "Training examples seen",
    "final_loss": "Final training loss (last logged window)", "train_runtime_s": "Training time (s)",
    "nonfinite_batches": "Batches skipped (non-finite loss or gradient)",
    "nonfinite_steps": "Optimizer steps skipped (non-finite loss or gradient)",
    "examples_per_s": "Examples per second",
}
_LOSS_PARAMETERS = ("margin", "distance", "soft_margin", "swap", "scale", "temperature")


def metric_info(key: str) -> dict[str, str]:
    """``"scifact-test/ndcg@10"`` -> evaluator ``scifact-test``, metric ``ndcg@10``, task type
    ``information-retrieval``, display name ``nDCG@10``. Unknown metrics get task type ``other``."""
    evaluator, _, metric = key.rpartition("/")
    stem, at, cutoff = metric.partition("@")
    base, _, variant = stem.partition("_")
    task_type, task_name, display = _TASKS.get(base, ("other", "Other", stem))
    display = f"{display}@{cutoff}" if at else display
    if variant:
        display = f"{display} ({variant})"
    return {"evaluator": evaluator or "evaluation", "metric": metric, "task_type": task_type,
            "task_name": task_name, "display": display}


def training_section(config: dict[str, Any], train: dict[str, Any]) -> str:
    """Loss and parameters, batches, sampler, gradient cache, optimiser, seed, steps and time."""
    loss, optim = config.get("loss", {}), config.get("optim", {})
    rows = [("Loss", f"`{loss.get('loss')}`"), ("Loss parameters", _loss_parameters(loss) or "the loss's defaults"),
            ("Batch size", f"{optim.get('batch_size')} rows per forward batch"),
            ("Gradient cache", _grad_cache_text(optim)),
            ("Gradient accumulation", f"{optim.get('gradient_accumulation_steps', 1)} batch(es) per optimizer step"),
            ("Sampler", _sampler_text(loss)),
            ("Learning rate", f"{optim.get('lr')} peak (AdamW), linear warm-up over {optim.get('warmup_ratio')} of "
                              f"the steps, then linear decay to 0"),
            ("Weight decay", optim.get("weight_decay")), ("Gradient clipping (max norm)", optim.get("max_grad_norm")),
            ("Max sequence length", optim.get("max_seq_length") or "the model's"),
            ("Precision", "bf16 autocast" if optim.get("bf16") else "fp32"), ("Seed", optim.get("seed"))]
    if optim.get("max_steps"):
        rows.append(("Max steps", optim["max_steps"]))
    rows += [(_TRAIN_LABELS.get(key, key), f"{value:.6g}" if isinstance(value, float) else value)
             for key, value in train.items()]
    return "## Training procedure\n\n" + table(("setting", "value"), rows)


def _loss_parameters(loss: dict[str, Any]) -> str:
    parts = [f"{name}={loss[name]}" for name in _LOSS_PARAMETERS if loss.get(name) is not None]
    if loss.get("scale") and loss.get("temperature") is None:
        parts[parts.index(f"scale={loss['scale']}")] += f" (temperature {1 / float(loss['scale']):.4g})"
    if loss.get("mask_false_negatives"):
        parts.append("in-batch false negatives masked (candidates whose text is a labelled positive of the row)")
    if loss.get("loss") == "ladder":
        parts.append(f"ladder_levels={loss.get('ladder_levels')}")
    return ", ".join(parts)


def _grad_cache_text(optim: dict[str, Any]) -> str:
    mini, batch = optim.get("mini_batch_size"), optim.get("batch_size")
    if mini is not None and batch is not None and mini < batch:
        return f"on: mini-batches of {mini} rows (same loss and gradients as one batch of {batch}, less memory)"
    return "off"


def _sampler_text(loss: dict[str, Any]) -> str:
    sampler = loss.get("sampler")
    if sampler == "pk":
        return f"pk (P labels x K = {loss.get('samples_per_label')} rows per label in each batch)"
    if sampler == "no-duplicates":
        return "no-duplicates (no text twice in a batch)"
    return str(sampler)


def mining_section(mining: dict[str, Any] | None) -> str:
    """The mining config and the counts of its report; empty when the data was not mined."""
    if not mining:
        return ""
    config_rows = list((mining.get("config") or {}).items())
    count_rows = list((mining.get("counts") or {}).items())
    text = ["### Hard-negative mining", "",
            "The training triplets' negatives were mined with the base model, with positive-aware "
            "false-negative filtering (NV-Retriever).", "", table(("mining setting", "value"), config_rows), "",
            table(("count", "value"), count_rows)]
    scores = mining.get("scores") or {}
    means = [(side, f"{stats['mean']:.4f} over {stats.get('count')}") for side, stats in scores.items()
             if isinstance(stats, dict) and stats.get("mean") is not None]
    if means:
        text += ["", table(("mean cosine with the query", "value"), means)]
    return "\n".join(text)


def evaluation_section(metrics: dict[str, Any]) -> str:
    """A table of every metric after training, with the base model's value before it (same run)."""
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    if not after:
        return "## Evaluation\n\nThe run evaluated nothing (no --eval-ir / --eval-sts / --eval-triplets)."
    rows = []
    for key, value in after.items():
        info = metric_info(key)
        old = before.get(key)
        rows.append((info["evaluator"], info["display"], "-" if old is None else f"{old:.4f}", f"{value:.4f}",
                     "-" if old is None else f"{value - old:+.4f}"))
    note = ("\"before\" is the base model and \"after\" the fine-tuned one, both evaluated in the same run"
            if before else "The base model was not evaluated in this run (--no-eval-before)")
    return "## Evaluation\n\n" + note + ".\n\n" + table(("evaluation", "metric", "before", "after", "change"), rows)


def table(columns: tuple[str, ...], rows: list[tuple[Any, ...]], header: bool = True) -> str:
    """A Markdown table; ``|`` in cells is escaped. ``header=False`` leaves the header row empty."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(columns if header else ("",) * len(columns)) + " |"
    lines = [head, "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
