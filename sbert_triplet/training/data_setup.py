"""Training data for the loop: load what the loss reads, then batch it with the configured sampler.

- pairs / triplets (``triplet``, ``mnr``, ``mnr-symmetric``):
  :func:`sbert_triplet.data.load_training_data` (files, datasets, BEIR folders);
- ``(text, label)`` rows (label losses): :func:`sbert_triplet.data.labelled.load_labelled`;
  labels are kept as given and mapped to ids here (sorted order);
- scored pairs (``ladder``): :func:`sbert_triplet.data.labelled.load_scored_pairs`; scores
  become relevance levels here (:func:`~sbert_triplet.training.objective.ladder_levels`).

Every distinct text is tokenised once, here, when the loader is built
(:class:`~sbert_triplet.training.bucketing.TokenCache`); a batch then only pads cached
tokens, in length-sorted chunks (``--length-buckets``, on by default; see
:mod:`~sbert_triplet.training.bucketing`).

Samplers: ``random`` (a seeded shuffle), ``no-duplicates`` (no text twice in a batch) and
``pk`` (P labels x K rows), see :mod:`sbert_triplet.data.samplers`. For in-batch-negative
losses the incomplete last batch is dropped.
"""

from __future__ import annotations

from typing import Any

from sbert_triplet.config import IN_BATCH_NEGATIVE_LOSSES, TrainConfig
from sbert_triplet.errors import ConfigError, DataSchemaError
from sbert_triplet.training.batching import RowCollator
from sbert_triplet.training.bucketing import BucketPlanner, TokenCache, default_overhead_tokens, default_shape_multiple
from sbert_triplet.training.objective import ladder_levels, loss_kind

LABEL_COLUMN = {"labels": "label", "ladder": "level"}


def load_train_data(config: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """Load ``config.data`` in the schema the configured loss reads.

    Raises:
        DataSchemaError, ConfigError: unreadable data, missing columns, invalid rows.
    """
    data, kind = config.data, loss_kind(config.loss.loss)
    if kind == "labels":
        from sbert_triplet.data.labelled import load_labelled

        return load_labelled(data.train, columns=data.columns, drop_invalid=data.drop_invalid)
    if kind == "ladder":
        from sbert_triplet.data.labelled import load_scored_pairs

        return load_scored_pairs(data.train, columns=data.columns, drop_invalid=data.drop_invalid)
    from sbert_triplet.data import load_training_data

    return load_training_data(data.train, split=data.train_split, columns=data.columns,
                              drop_invalid=data.drop_invalid)


def text_columns(dataset, kind: str) -> list[str]:
    """The columns the encoder reads, in order.

    Raises:
        DataSchemaError: an in-memory dataset without the columns the loss reads.
    """
    names = list(dataset.column_names)
    wanted = {"labels": ["text", "label"], "ladder": ["anchor", "positive", "score"]}.get(kind, ["anchor", "positive"])
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataSchemaError(f"the training data lacks column(s) {missing} needed by this loss; columns: {names}")
    if kind == "labels":
        return ["text"]
    if kind == "ladder":
        return ["anchor", "positive"]
    return names


def make_loader(dataset, model, config: TrainConfig):
    """A DataLoader of collated batches (see :mod:`~sbert_triplet.training.batching`).

    Raises:
        ConfigError: too few rows for one full batch of an in-batch-negative loss, or data
            a P x K batch cannot be formed from.
    """
    from torch.utils.data import DataLoader

    kind = loss_kind(config.loss.loss)
    columns = text_columns(dataset, kind)
    label_ids = None
    if kind == "ladder":
        dataset = dataset.add_column("level", ladder_levels(dataset["score"], config.loss.ladder_levels))
    elif kind == "labels":
        label_ids = {label: i for i, label in enumerate(sorted(set(dataset["label"])))}
    cache = TokenCache.for_model(model, (text for col in columns for text in dataset[col]))
    collate = RowCollator(cache, columns, _planner(model, config), label_column=LABEL_COLUMN.get(kind),
                          label_ids=label_ids)
    sampler = _batch_sampler(dataset, columns, config)  # batches are a function of (seed, epoch): exact resume
    workers = config.optim.num_workers
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                        persistent_workers=workers > 0)
    if len(loader) == 0:
        raise ConfigError(
            f"{len(dataset)} training rows give no full batch of {config.optim.batch_size} (incomplete batches are "
            f"dropped for in-batch-negative losses, and the {config.loss.sampler} sampler puts no text twice in a "
            f"batch): lower --batch-size"
        )
    return loader


def _planner(model, config: TrainConfig) -> BucketPlanner:
    """Length buckets as configured; the gradient cache's mini-batch size bounds a chunk's tokens."""
    optim = config.optim
    overhead = optim.bucket_overhead_tokens
    if overhead is None:
        overhead = default_overhead_tokens(getattr(model, "device", "cpu"))
    # bf16 on CPU: oneDNN builds a kernel per new matmul shape, so chunk widths and row counts
    # are rounded to multiples of 8 to make shapes repeat (1.36x measured); fp32 keeps exact cuts
    multiple = default_shape_multiple(getattr(model, "device", "cpu"), optim.bf16)
    # the padding-free forward: CPU, one graph per batch (not with the gradient cache's chunk-by-chunk backward)
    packed = optim.packed_forward and str(getattr(model, "device", "cpu")).startswith("cpu") \
        and not config.uses_grad_cache
    return BucketPlanner(bucketing=optim.length_buckets, overhead_tokens=overhead,
                         chunk_rows=optim.mini_batch_size if config.uses_grad_cache else None,
                         pad_to_multiple_of=multiple, rows_multiple_of=multiple, packed=packed)


def _drop_last(config: TrainConfig) -> bool:
    return config.loss.loss in IN_BATCH_NEGATIVE_LOSSES


def _batch_sampler(dataset, columns: list[str], config: TrainConfig):
    from sbert_triplet.data.samplers import NoDuplicatesBatchSampler, PKBatchSampler, RandomBatchSampler

    cfg, optim = config.loss, config.optim
    if cfg.sampler == "no-duplicates":
        rows = list(zip(*(dataset[c] for c in columns)))  # one tuple of texts per row
        return NoDuplicatesBatchSampler(rows, optim.batch_size, seed=optim.seed, drop_last=_drop_last(config))
    if cfg.sampler == "pk":
        try:
            return PKBatchSampler(dataset["label"], optim.batch_size, samples_per_label=cfg.samples_per_label,
                                  seed=optim.seed)
        except ValueError as err:
            raise ConfigError(f"--sampler pk: {err}") from err
    return RandomBatchSampler(len(dataset), optim.batch_size, seed=optim.seed, drop_last=_drop_last(config))
