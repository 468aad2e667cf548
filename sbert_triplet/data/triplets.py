"""Turn any supported table into the canonical (anchor, positive, negative_1..k) Dataset.

Pipeline: load (file, folder, Hub id or in-memory Dataset) -> resolve columns by name ->
validate the texts -> select and rename to the canonical schema. A BEIR folder becomes
(query, relevant document) pairs instead (see :mod:`sbert_triplet.data.beir`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbert_triplet.data.files import in_memory_dataset
from sbert_triplet.data.flag import expand_list_layout, is_list_column
from sbert_triplet.data.schema import resolve_columns
from sbert_triplet.data.validation import is_string_feature, python_values, validate_rows, validate_texts
from sbert_triplet.errors import DataSchemaError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from datasets import Dataset, DatasetDict

IN_MEMORY_SOURCE = "<in-memory dataset>"
_ROW_ID = "__sbert_triplet_row__"


def load_triplets(
    path_or_dataset: str | Path | Dataset | DatasetDict,
    columns: str | Mapping[str, str] | None = None,
    split: str | None = None,
    drop_invalid: bool = False,
    check_rows: bool = False,
) -> tuple[Dataset, dict[str, Any]]:
    """Load training pairs or triplets (or the FlagEmbedding list layout) into the canonical schema.

    Args:
        path_or_dataset: anything :func:`sbert_triplet.data.files.load_table` reads, or an
            in-memory ``datasets.Dataset`` / ``DatasetDict`` (``split`` picks the split).
        columns: a ``--columns`` mapping, e.g. ``"anchor=question,positive=answer"``; roles it
            leaves out use the canonical column names.
        split: split of a saved ``DatasetDict`` / Hub dataset (default ``"train"``).
        drop_invalid: drop rows with an invalid text instead of raising.
        check_rows: also run :func:`~sbert_triplet.data.validation.validate_rows` (positive equal
            to anchor, duplicate rows). Off by default so evaluation sets load as shipped;
            :func:`load_training_data` turns it on.

    Returns:
        ``(dataset, report)``: a Dataset with columns exactly ``anchor, positive,
        negative_1 .. negative_k``, all ``string``; a file's ``negative`` column becomes
        ``negative_1``; list-valued columns are expanded (:mod:`sbert_triplet.data.flag`).
        The report is :func:`validate_texts`'s (plus ``positive_equals_anchor`` /
        ``duplicate_row`` in ``dropped_by_reason`` when rows were dropped for them) plus
        ``kind`` (``"pairs"``, ``"triplets"`` or ``"list"``), ``columns`` ({canonical name:
        original column}), ``num_negatives`` and, for ``"list"``, the expansion counts.

    Raises:
        DataSchemaError: unreadable source, missing/unknown columns, an invalid text
            (source, 0-based row and column named), or no rows left.
        ConfigError: a malformed ``columns`` mapping.
    """
    dataset, source = _as_dataset(path_or_dataset, split)
    anchor, positive, negatives = resolve_columns(dataset.column_names, columns, source)
    if len(dataset) == 0:
        raise DataSchemaError("no rows to train on (the data is empty)", source=source)
    names = {"anchor": anchor, "positive": positive}
    names.update({f"negative_{i}": c for i, c in enumerate(negatives, start=1)})
    extra: dict[str, Any] = {}
    row_ids = list(range(len(dataset)))
    if any(is_list_column(dataset, c) for c in [positive, *negatives]):
        dataset, row_ids, extra = expand_list_layout(dataset, anchor, positive, negatives, source, drop_invalid)
        names = {c: names.get(c, negatives[0] if negatives else c) for c in dataset.column_names}
    originals = list(names.values()) if not extra else dataset.column_names
    dataset, report = _validate(dataset.select_columns(originals), originals, source, drop_invalid, row_ids, names if extra else {}, check_rows)
    canonical = ["anchor", "positive", *[f"negative_{i}" for i in range(1, len(originals) - 1)]]
    report.update(
        kind="list" if extra else ("triplets" if len(originals) > 2 else "pairs"),
        columns=dict(zip(canonical, names.values())),
        num_negatives=len(originals) - 2,
        **{k: v for k, v in extra.items() if k != "num_negatives"},
    )
    return _to_canonical(dataset, originals, canonical), report


def _validate(
    dataset: Dataset,
    columns: list[str],
    source: str,
    drop_invalid: bool,
    row_ids: list[int],
    names: dict[str, str],
    check_rows: bool,
) -> tuple[Dataset, dict[str, Any]]:
    """``validate_texts`` then ``validate_rows``; rows and columns in errors and in the report
    are those of the file (``row_ids``: file row of each dataset row; ``names``: canonical ->
    file column, used after a list-layout expansion renamed them)."""
    with_ids = dataset.add_column(_ROW_ID, row_ids) if dataset.num_rows else dataset
    try:
        kept, report = validate_texts(with_ids, columns, source, drop_invalid)
    except DataSchemaError as error:
        raise _in_file_terms(error, row_ids, names) from None
    report["first_dropped_rows"] = [row_ids[r] for r in report["first_dropped_rows"]]
    if report["rows_kept"] == 0:
        raise DataSchemaError(
            f"all {report['rows_read']} rows were invalid and dropped ({report['dropped_by_reason']})",
            source=source,
        )
    if not check_rows:
        return kept.remove_columns([_ROW_ID]), report
    try:
        kept, counts = validate_rows(kept, columns, source, drop_invalid, list(kept[_ROW_ID]))
    except DataSchemaError as error:
        raise _in_file_terms(error, None, names) from None
    report["dropped_by_reason"].update({k: v for k, v in counts.items() if v})  # text reasons always, row reasons when > 0
    report["rows_dropped"] += sum(counts.values())
    report["rows_kept"] -= sum(counts.values())
    return kept.remove_columns([_ROW_ID]), report


def _in_file_terms(error: DataSchemaError, row_ids: list[int] | None, names: dict[str, str]) -> DataSchemaError:
    """The same error with the file's row number and column name."""
    where = [p for p in (error.source, f"row {error.row}" if error.row is not None else None,
                         f"column {error.column!r}" if error.column is not None else None) if p]
    message = str(error)[len(", ".join(where)) + 2:] if where else str(error)
    row = row_ids[error.row] if row_ids is not None and error.row is not None else error.row
    column = names.get(error.column, error.column) if error.column is not None else None
    return DataSchemaError(message, source=error.source, row=row, column=column)


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
    ``"triplets"``, ``"pairs"`` or ``"list"``, with the row checks of
    :func:`~sbert_triplet.data.validation.validate_rows` on. NLI pairs (premise, hypothesis and
    gold label columns, e.g. ``snli_1.0_dev.jsonl.gz``) become triplets with
    :func:`sbert_triplet.data.nli.load_nli_triplets`, report ``kind`` ``"nli"``; there the
    row checks name the 0-based *triplet* row.

    Raises:
        DataSchemaError, ConfigError: as :func:`load_triplets` and
            :func:`sbert_triplet.data.beir.beir_training_pairs`.
    """
    from sbert_triplet.data.beir import beir_training_pairs, is_beir_folder

    if not is_beir_folder(path):
        table = _read_once(path, split)  # read the file once, whichever adapter takes it
        if not columns and _is_nli_table(table.dataset.column_names):
            return _nli_training_data(table, drop_invalid)
        return load_triplets(table, columns=columns, split=split, drop_invalid=drop_invalid, check_rows=True)
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


@dataclass(frozen=True)
class LoadedTable:
    """A table already read from ``source`` (a path or an in-memory dataset), passed on so
    the next adapter does not read the file again; errors still name ``source``."""

    dataset: Dataset
    source: str


def _read_once(path_or_dataset: Any, split: str | None) -> LoadedTable:
    dataset, source = _as_dataset(path_or_dataset, split)
    return LoadedTable(dataset, source)


def _is_nli_table(names: list[str]) -> bool:
    from sbert_triplet.data.nli import nli_columns

    return nli_columns(names) is not None and "anchor" not in names and "query" not in names


def _nli_training_data(table: LoadedTable, drop_invalid: bool) -> tuple[Dataset, dict[str, Any]]:
    from sbert_triplet.data.nli import load_nli_triplets

    dataset, report = load_nli_triplets(table, drop_invalid=drop_invalid)
    name = f"{table.source} (NLI triplets)"
    dataset, counts = validate_rows(dataset, ["anchor", "positive", "negative_1"], name, drop_invalid)
    report.update(rows_kept=len(dataset), dropped_by_reason=counts, num_negatives=1)
    return dataset, report


def _as_dataset(path_or_dataset: Any, split: str | None) -> tuple[Dataset, str]:
    import datasets

    from sbert_triplet.data.files import load_table, pick_split

    if isinstance(path_or_dataset, LoadedTable):
        return path_or_dataset.dataset, path_or_dataset.source
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
