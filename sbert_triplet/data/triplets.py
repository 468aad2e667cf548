"""Turn any supported table into the canonical (anchor, positive, negative_1..k) Dataset.

Pipeline: load (file, folder, Hub id or in-memory Dataset) -> resolve columns by name ->
validate the texts -> select and rename to the canonical schema. A BEIR folder becomes
(query, relevant document) pairs instead (see :mod:`sbert_triplet.data.beir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbert_triplet.data.files import in_memory_dataset
from sbert_triplet.data.schema import is_string_feature, python_values, resolve_columns, validate_texts
from sbert_triplet.errors import DataSchemaError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from datasets import Dataset, DatasetDict

IN_MEMORY_SOURCE = "<in-memory dataset>"


def load_triplets(
    path_or_dataset: str | Path | Dataset | DatasetDict,
    columns: str | Mapping[str, str] | None = None,
    split: str | None = None,
    drop_invalid: bool = False,
) -> tuple[Dataset, dict[str, Any]]:
    """Load training pairs or triplets into the canonical schema.

    Args:
        path_or_dataset: anything :func:`sbert_triplet.data.files.load_table` reads, or an
            in-memory ``datasets.Dataset`` / ``DatasetDict`` (``split`` picks the split).
        columns: a ``--columns`` mapping, e.g. ``"anchor=question,positive=answer"``; roles it
            leaves out use the canonical column names.
        split: split of a saved ``DatasetDict`` / Hub dataset (default ``"train"``).
        drop_invalid: drop rows with an invalid text instead of raising.

    Returns:
        ``(dataset, report)``: a Dataset with columns exactly ``anchor, positive,
        negative_1 .. negative_k``, all ``string``; a file's ``negative`` column becomes
        ``negative_1``. The report is :func:`validate_texts`'s plus ``kind`` (``"pairs"`` or
        ``"triplets"``), ``columns`` ({canonical name: original column}) and ``num_negatives``.

    Raises:
        DataSchemaError: unreadable source, missing/unknown columns, an invalid text
            (source, 0-based row and column named), or no rows left.
        ConfigError: a malformed ``columns`` mapping.
    """
    dataset, source = _as_dataset(path_or_dataset, split)
    anchor, positive, negatives = resolve_columns(dataset.column_names, columns, source)
    originals = [anchor, positive, *negatives]
    canonical = ["anchor", "positive", *[f"negative_{i}" for i in range(1, len(negatives) + 1)]]
    if len(dataset) == 0:
        raise DataSchemaError("no rows to train on (the data is empty)", source=source)
    dataset, report = validate_texts(dataset.select_columns(originals), originals, source, drop_invalid)
    if report["rows_kept"] == 0:
        raise DataSchemaError(
            f"all {report['rows_read']} rows were invalid and dropped ({report['dropped_by_reason']})",
            source=source,
        )
    report.update(
        kind="triplets" if negatives else "pairs",
        columns=dict(zip(canonical, originals)),
        num_negatives=len(negatives),
    )
    return _to_canonical(dataset, originals, canonical), report


def load_training_data(
    path: str | Path,
    split: str | None = None,
    columns: str | Mapping[str, str] | None = None,
    drop_invalid: bool = False,
) -> tuple[Dataset, dict[str, Any]]:
    """Load training data from a BEIR folder or any table (see :func:`load_triplets`).

    A BEIR folder (:func:`sbert_triplet.data.beir.is_beir_folder`) gives (query, relevant
    document) pairs of ``split`` (default ``"train"``), report ``kind`` ``"beir"``; ``columns``
    does not apply to it. Anything else goes through :func:`load_triplets`, report ``kind``
    ``"triplets"`` or ``"pairs"``.

    Raises:
        DataSchemaError, ConfigError: as :func:`load_triplets` and
            :func:`sbert_triplet.data.beir.beir_training_pairs`.
    """
    from sbert_triplet.data.beir import beir_training_pairs, is_beir_folder

    if not is_beir_folder(path):
        return load_triplets(path, columns=columns, split=split, drop_invalid=drop_invalid)
    if columns:
        raise DataSchemaError(
            "--columns does not apply to a BEIR folder (queries and documents are known by name)",
            source=str(path),
        )
    name = split or "train"
    pairs = beir_training_pairs(path, name)
    if len(pairs) == 0:
        raise DataSchemaError(f"qrels/{name}.tsv has no relevant judgements to train on", source=str(path))
    dataset, report = validate_texts(pairs, ["anchor", "positive"], str(path), drop_invalid)
    report.update(
        kind="beir",
        split=name,
        columns={"anchor": "queries.text", "positive": "corpus.title+text"},
        num_negatives=0,
    )
    return _to_canonical(dataset, ["anchor", "positive"], ["anchor", "positive"]), report


def _as_dataset(path_or_dataset: Any, split: str | None) -> tuple[Dataset, str]:
    import datasets

    from sbert_triplet.data.files import load_table, pick_split

    if isinstance(path_or_dataset, datasets.DatasetDict):
        return pick_split(path_or_dataset, split, IN_MEMORY_SOURCE), IN_MEMORY_SOURCE
    if isinstance(path_or_dataset, datasets.Dataset):
        return path_or_dataset, IN_MEMORY_SOURCE
    if isinstance(path_or_dataset, (str, Path)):
        return load_table(path_or_dataset, split=split), str(path_or_dataset)
    raise TypeError(
        f"expected a path or a datasets.Dataset, got {type(path_or_dataset).__name__}"
    )  # a programming error, not user data


def _to_canonical(dataset: Dataset, originals: list[str], canonical: list[str]) -> Dataset:
    """Select ``originals`` in order, rename them to ``canonical``, store them as ``string``."""
    import pyarrow as pa

    table = dataset.select_columns(originals).with_format("arrow")[:]  # applies any row selection
    arrays = []
    for name in originals:
        feature = dataset.features[name]
        if is_string_feature(feature):
            arrays.append(table.column(name).cast(pa.string()))
        else:  # e.g. a datasets.Json column whose remaining values are all str after validation
            arrays.append(pa.array(python_values(table.column(name), feature), type=pa.string()))
    return in_memory_dataset(pa.table(arrays, names=canonical))
