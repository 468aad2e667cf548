"""The canonical training schema, column resolution by name, and text validation.

Canonical schema: a ``datasets.Dataset`` whose columns are exactly ``anchor``,
``positive``, then ``negative_1`` ... ``negative_k`` (k >= 0), in that order, all strings.

Columns are always chosen by *name*, never by position: a file whose columns come in the
order ``negative, anchor, positive`` is read correctly, and a column that is neither
mapped nor canonical (``id``, ``label``, ...) is ignored and never used as text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sbert_triplet.errors import ConfigError, DataSchemaError

if TYPE_CHECKING:
    from datasets import Dataset

MAPPING_FORM = "anchor=<column>,positive=<column>[,negative=<column> | ,negative_1=<column>,...]"
_NEGATIVE_N = re.compile(r"^negative_(\d+)$")
REASONS = ("empty", "missing", "nan", "not_string")
ROW_REASONS = ("positive_equals_anchor", "duplicate_row")
ALIASES = {"anchor": ("query",), "positive": ("pos",), "negative": ("neg",)}  # FlagEmbedding names
MAX_REPORTED_ROWS = 10


def _is_canonical_key(key: str) -> bool:
    match = _NEGATIVE_N.match(key)
    return key in ("anchor", "positive", "negative") or (match is not None and int(match[1]) >= 1)


def parse_column_mapping(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse a ``--columns`` value into ``{canonical name: column name in the data}``.

    ``"anchor=question,positive=answer,negative=neg"`` ->
    ``{"anchor": "question", "positive": "answer", "negative": "neg"}``.
    Keys must be canonical: ``anchor``, ``positive``, ``negative`` or ``negative_<n>``
    (n >= 1, contiguous from 1, not mixed with ``negative``). ``None`` or ``""`` -> ``{}``.

    Raises:
        ConfigError: a malformed item, an unknown or repeated key, or one column given
            two roles.
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        items: list[tuple[str, str]] = []
        for raw in spec.split(","):
            if not raw.strip():
                continue
            key, sep, value = raw.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(f"--columns: malformed item {raw.strip()!r}; expected {MAPPING_FORM}")
            items.append((key.strip(), value.strip()))
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        raise ConfigError(f"--columns: expected a string like {MAPPING_FORM!r} or a dict, got {type(spec).__name__}")
    mapping: dict[str, str] = {}
    for key, value in items:
        if not isinstance(key, str) or not _is_canonical_key(key):
            raise ConfigError(
                f"--columns: unknown key {key!r}; valid keys are anchor, positive, negative, "
                f"negative_1, negative_2, ... (expected {MAPPING_FORM})"
            )
        if not isinstance(value, str) or not value:
            raise ConfigError(f"--columns: the column for {key!r} must be a non-empty string, got {value!r}")
        if key in mapping:
            raise ConfigError(f"--columns: key {key!r} is given twice")
        mapping[key] = value
    _check_mapping_negatives(mapping)
    used = list(mapping.values())
    for column in used:
        if used.count(column) > 1:
            roles = [k for k, v in mapping.items() if v == column]
            raise ConfigError(f"--columns: column {column!r} is given two roles {roles}; each role needs its own column")
    return {k: mapping[k] for k in sorted(mapping, key=_role_order)}


def _role_order(key: str) -> tuple[int, int]:
    if key == "anchor":
        return (0, 0)
    if key == "positive":
        return (1, 0)
    match = _NEGATIVE_N.match(key)
    return (2, int(match[1]) if match else 0)


def _check_mapping_negatives(mapping: Mapping[str, str]) -> None:
    numbered = sorted(int(m[1]) for k in mapping if (m := _NEGATIVE_N.match(k)))
    if numbered and "negative" in mapping:
        raise ConfigError("--columns: use either negative=<column> or negative_1=..,negative_2=.., not both")
    if numbered and numbered != list(range(1, len(numbered) + 1)):
        raise ConfigError(
            f"--columns: negative keys must be negative_1 .. negative_k without gaps, got "
            f"{['negative_%d' % n for n in numbered]}"
        )


def resolve_columns(
    column_names: Iterable[str], mapping: str | Mapping[str, str] | None, source: str
) -> tuple[str, str, list[str]]:
    """Pick the anchor, positive and negative columns of ``source`` by name.

    The mapping (see :func:`parse_column_mapping`) is used first; roles it does not name
    fall back to the canonical column names: ``anchor``, ``positive``, and an optional
    ``negative`` or ``negative_1`` .. ``negative_k`` (sorted numerically, contiguous from 1),
    and then to the FlagEmbedding names ``query`` / ``pos`` / ``neg`` (:data:`ALIASES`). Negatives are taken from the canonical names only when the mapping names no negative.
    Other columns (``id``, ``label``, ...) are ignored.

    Returns:
        ``(anchor column, positive column, [negative columns in order])``.

    Raises:
        DataSchemaError: a required column is missing, the mapping names a column that does
            not exist, canonical negatives are ambiguous or have gaps, or a column would be
            used twice. The message lists the existing columns and the ``--columns`` fix.
    """
    names = list(column_names)
    roles = parse_column_mapping(mapping)
    for role, column in roles.items():
        if column not in names:
            raise DataSchemaError(
                f"--columns maps {role} to {column!r}, which is not a column here; "
                f"columns found: {names}{_case_hint(column, names)}. {_fix_hint()}",
                source=source,
                column=column,
            )
    anchor = _required(roles, "anchor", names, source)
    positive = _required(roles, "positive", names, source)
    if any(k == "negative" or _NEGATIVE_N.match(k) for k in roles):
        negatives = [v for k, v in roles.items() if k not in ("anchor", "positive")]
    else:
        negatives = _canonical_negatives(names, source)
    chosen = [anchor, positive, *negatives]
    for column in chosen:
        if chosen.count(column) > 1:
            raise DataSchemaError(
                f"column {column!r} would be used for two roles (anchor/positive/negative); "
                f"columns found: {names}. {_fix_hint()}",
                source=source,
                column=column,
            )
    return anchor, positive, negatives


def _required(roles: Mapping[str, str], role: str, names: list[str], source: str) -> str:
    if role in roles:
        return roles[role]
    if role in names:
        return role
    alias = next((a for a in ALIASES[role] if a in names), None)
    if alias is not None:
        return alias
    raise DataSchemaError(
        f"missing required column {role!r}; columns found: {names}{_case_hint(role, names)}. {_fix_hint()}",
        source=source,
    )


def _canonical_negatives(names: list[str], source: str) -> list[str]:
    numbered = sorted((int(m[1]), n) for n in names if (m := _NEGATIVE_N.match(n)))
    if numbered and "negative" in names:
        raise DataSchemaError(
            f"both 'negative' and {[n for _, n in numbered]} exist, so the negatives are ambiguous; "
            f"rename them or choose with --columns negative=<column> (or negative_1=..,negative_2=..)",
            source=source,
        )
    if "negative" in names:
        return ["negative"]
    if not numbered:
        return [a for a in ALIASES["negative"] if a in names][:1]
    numbers = [i for i, _ in numbered]
    if numbers != list(range(1, len(numbers) + 1)):
        raise DataSchemaError(
            f"negative columns must be negative_1 .. negative_k without gaps, found "
            f"{[n for _, n in numbered]}; rename them or choose with --columns negative_1=<column>,...",
            source=source,
        )
    return [n for _, n in numbered]


def _case_hint(wanted: str, names: list[str]) -> str:
    close = [n for n in names if n.lower() == wanted.lower() and n != wanted]
    return f" (did you mean {close[0]!r}? names are case-sensitive)" if close else ""


def _fix_hint() -> str:
    return "Rename the columns or map them with --columns anchor=<name>,positive=<name>[,negative=<name>]"


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
