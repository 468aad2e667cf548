"""Validation of text cells and rows: errors that name source, row and column, or counted drops.

Cells must be non-empty, non-whitespace strings (:func:`validate_texts`); rows must not
have a positive identical to their anchor or repeat an earlier row (:func:`validate_rows`).
Row numbers are 0-based data rows of the source (a header line is not counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sbert_triplet.errors import DataSchemaError

if TYPE_CHECKING:
    from datasets import Dataset

REASONS = ("empty", "missing", "nan", "not_string")
ROW_REASONS = ("positive_equals_anchor", "duplicate_row")
MAX_REPORTED_ROWS = 10


def validate_texts(
    dataset: Dataset, columns: Iterable[str], source: str, drop_invalid: bool = False
) -> tuple[Dataset, dict[str, Any]]:
    """Check that every cell of ``columns`` is a non-empty, non-whitespace ``str``.

    Invalid cells are None/null ("missing"), float NaN ("nan"), any non-string such as an
    int or a list ("not_string"), and empty or whitespace-only strings ("empty"). String
    columns are checked with vectorised pyarrow kernels (100k rows in well under a second);
    other column types fall back to one Python pass over that column.

    Row numbers are 0-based data rows in file order; a CSV/TSV header line is not counted
    (data row ``i`` is line ``i + 1`` of a JSONL file and line ``i + 2`` of a CSV file
    with a header, when no value spans several lines).

    Args:
        dataset: the data; only ``columns`` are looked at and every column is kept.
        columns: names of the text columns to check.
        source: file or dataset name used in errors and in the report.
        drop_invalid: drop rows with any invalid cell instead of raising.

    Returns:
        ``(dataset, report)``; the dataset is unchanged when nothing was dropped. The report
        has ``source``, ``rows_read``, ``rows_kept``, ``rows_dropped``, ``dropped_by_reason``
        (each dropped row counted once, under the reason of its first invalid cell) and
        ``first_dropped_rows`` (up to 10 row indices).

    Raises:
        DataSchemaError: (``drop_invalid=False``) at the first invalid cell in row order,
            with ``row`` and ``column`` set and the fix in the message.
    """
    import numpy as np

    columns = list(columns)
    table = dataset.with_format("arrow")[:]  # one read, any row selection applied
    n = table.num_rows
    reason_codes = np.zeros(n, dtype=np.int8)  # 0 = valid, else 1 + index into REASONS
    first_value: dict[int, tuple[str, Any]] = {}
    for column in columns:
        codes, values = _column_reasons(table.column(column), dataset.features[column], n)
        new = (reason_codes == 0) & (codes != 0)
        reason_codes[new] = codes[new]
        for row in np.flatnonzero(new)[:1]:
            first_value[int(row)] = (column, values(int(row)))
    bad_rows = np.flatnonzero(reason_codes)
    if len(bad_rows) and not drop_invalid:
        row = int(bad_rows[0])
        column, value = first_value[row]  # the first bad row is the first new one of some column
        raise DataSchemaError(
            f"{_describe(REASONS[reason_codes[row] - 1], value)}. Fix this row or pass --drop-invalid to "
            f"skip invalid rows (rows are 0-based data rows, a header line is not counted)",
            source=source,
            row=row,
            column=column,
        )
    counts = np.bincount(reason_codes, minlength=len(REASONS) + 1)
    report: dict[str, Any] = {
        "source": source,
        "rows_read": n,
        "rows_kept": n - len(bad_rows),
        "rows_dropped": len(bad_rows),
        "dropped_by_reason": {reason: int(counts[i + 1]) for i, reason in enumerate(REASONS)},
        "first_dropped_rows": [int(r) for r in bad_rows[:MAX_REPORTED_ROWS]],
    }
    if len(bad_rows):
        dataset = _keep_rows(dataset, table, reason_codes == 0)
    return dataset, report


def _keep_rows(dataset: Dataset, table: Any, keep: Any) -> Dataset:
    """A new in-memory Dataset of the kept rows, features preserved. (``Dataset.select``
    would leave an indices mapping that later reads gather row by row: 1 s per 100k.)"""
    import uuid

    import datasets
    import pyarrow as pa

    kept = table.filter(pa.array(keep))
    return datasets.Dataset(kept, info=dataset.info.copy(), split=dataset.split, fingerprint=uuid.uuid4().hex)


def is_string_feature(feature: Any) -> bool:
    return type(feature).__name__ == "Value" and feature.dtype in ("string", "large_string", "string_view")


def _column_reasons(array: Any, feature: Any, n: int):
    """Return (int8 reason codes per row, row -> value) for one pyarrow column."""
    import numpy as np
    import pyarrow.compute as pc

    if is_string_feature(feature):
        missing = array.is_null().to_numpy(zero_copy_only=False)
        length = pc.utf8_length(pc.utf8_trim_whitespace(array))
        empty = pc.fill_null(pc.equal(length, 0), False).to_numpy(zero_copy_only=False)
        codes = np.zeros(n, dtype=np.int8)
        codes[empty] = 1 + REASONS.index("empty")
        codes[missing] = 1 + REASONS.index("missing")
        return codes, lambda row: array[row].as_py()
    values = python_values(array, feature)
    codes = np.fromiter((_reason_code(v) for v in values), dtype=np.int8, count=n)
    return codes, values.__getitem__


def python_values(array: Any, feature: Any) -> list[Any]:
    """Python values of a pyarrow column; a ``datasets.Json`` column is decoded with
    ``json.loads`` (much faster than the Dataset formatter, and NaN stays NaN)."""
    import json

    if type(feature).__name__ == "Json":
        storage = array.cast(array.type.storage_type) if hasattr(array.type, "storage_type") else array
        return [None if s is None else json.loads(s) for s in storage.to_pylist()]
    return array.to_pylist()


def _reason_code(value: Any) -> int:
    if isinstance(value, str):
        return 0 if value.strip() else 1 + REASONS.index("empty")
    if value is None:
        return 1 + REASONS.index("missing")
    if isinstance(value, float) and math.isnan(value):
        return 1 + REASONS.index("nan")
    return 1 + REASONS.index("not_string")


def _describe(reason: str, value: Any) -> str:
    if reason == "empty":
        return "empty or whitespace-only text" + (f" (found {value!r})" if value else "")
    if reason == "missing":
        return "missing value (null / None, NaN or absent key); expected a non-empty string"
    if reason == "nan":
        return "NaN; expected a non-empty string"
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"expected a string, got {type(value).__name__} {shown}"


def validate_rows(
    dataset: Dataset, columns: list[str], source: str, drop_invalid: bool = False, row_ids: list[int] | None = None
) -> tuple[Dataset, dict[str, int]]:
    """Row-level checks after :func:`validate_texts`: ``columns`` = [anchor, positive, negatives...].

    ``positive_equals_anchor``: the positive equals the anchor after ``str.strip`` (a
    zero-distance "positive" teaches nothing and is a sign of a wrong column mapping).
    ``duplicate_row``: the same texts in every column as an earlier row (the first is kept);
    duplicates over-weight a row and, with in-batch negatives, can put a row's own
    positive among its negatives.

    Args:
        row_ids: the file row of each dataset row, for messages (default 0..n-1).

    Returns:
        ``(dataset, counts)``, counts ``{reason: rows dropped}`` for :data:`ROW_REASONS`.

    Raises:
        DataSchemaError: (``drop_invalid=False``) at the first offending row, naming the
            source, the file row and the column, with the fix.
    """
    import numpy as np

    table = dataset.with_format("arrow")[:]
    values = [table.column(c).to_pylist() for c in columns]
    ids = row_ids if row_ids is not None else list(range(table.num_rows))
    keep = np.ones(table.num_rows, dtype=bool)
    counts = dict.fromkeys(ROW_REASONS, 0)
    seen: dict[tuple, int] = {}
    for i, row in enumerate(zip(*values)):
        if row[0].strip() == row[1].strip():
            reason, column, detail = ROW_REASONS[0], columns[1], f"the positive equals the anchor ({row[1]!r})"
        elif row in seen:
            reason, column, detail = ROW_REASONS[1], columns[0], f"duplicate of row {seen[row]} (same texts in {columns})"
        else:
            seen[row] = ids[i]
            continue
        if not drop_invalid:
            raise DataSchemaError(
                f"{detail}. Fix or remove this row, or pass --drop-invalid to drop and count such rows",
                source=source, row=ids[i], column=column,
            )  # fmt: skip
        keep[i] = False
        counts[reason] += 1
    if not keep.all():
        dataset = _keep_rows(dataset, table, keep)
    return dataset, counts
