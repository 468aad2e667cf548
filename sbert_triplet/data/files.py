"""Read a table of training data from a local file, a saved dataset folder, or the Hub.

Supported: ``.jsonl``/``.json`` (optionally ``.gz``), ``.csv``/``.tsv`` (optionally ``.gz``,
header row), ``.parquet``, a folder written by ``Dataset.save_to_disk`` or
``DatasetDict.save_to_disk``, and anything ``datasets.load_dataset`` accepts (a folder of
data files, a Hub id; we run offline, so Hub ids only work when cached).

Text is kept exactly as written: CSV/TSV cells are read as strings (``"1"`` stays ``"1"``,
an empty cell is ``""``), so :func:`sbert_triplet.data.validation.validate_texts` can report
bad cells instead of a type-inferring reader hiding them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sbert_triplet.errors import DataSchemaError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

SUFFIXES = (
    ".jsonl", ".jsonl.gz", ".json", ".json.gz",
    ".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet",
)  # fmt: skip


def file_suffix(path: str | Path) -> str | None:
    """The supported (possibly compound) suffix of ``path``, lowercased, or None."""
    name = Path(path).name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return None


def open_text(path: str | Path) -> TextIO:
    """Open a UTF-8 text file for reading, gunzipping ``*.gz``; a BOM is skipped."""
    if str(path).lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def load_table(path: str | Path, split: str | None = None) -> Dataset:
    """Load ``path`` as a ``datasets.Dataset``, with every column it has.

    Args:
        path: a data file (see :data:`SUFFIXES`), a ``save_to_disk`` folder, a folder of
            data files or a Hub id.
        split: for a saved ``DatasetDict`` the split to take (default ``"train"``); for
            ``load_dataset`` the split to load (default ``"train"``). A single file is one
            table, so ``split`` is ignored for it.

    Raises:
        DataSchemaError: the file does not exist, cannot be parsed, the split is unknown,
            or the path is neither local nor reachable on the Hub. ``source`` is ``str(path)``.
    """
    source = str(path)
    local = Path(path)
    suffix = file_suffix(local)
    if local.is_dir():
        if (local / "dataset_info.json").is_file() or (local / "dataset_dict.json").is_file():
            return _load_saved(local, split, source)
        _reject_beir_folder(local, source)
        return _load_with_datasets(source, split, exists=True)
    if suffix is None:
        if local.is_file():
            raise DataSchemaError(
                f"unsupported file type; supported: {', '.join(SUFFIXES)}, or a save_to_disk folder",
                source=source,
            )
        return _load_with_datasets(source, split, exists=False)
    if not local.is_file():
        raise DataSchemaError(f"file not found (resolved to {local.resolve()})", source=source)
    if suffix.startswith(".json"):
        return _records_to_dataset(_read_json_records(local, source), source)
    if suffix == ".parquet":
        return _read_parquet(local, source)
    return _read_delimited(local, "\t" if suffix.startswith(".tsv") else ",", source)


def in_memory_dataset(table: Any) -> Dataset:
    """Wrap a ``pyarrow.Table`` in a ``datasets.Dataset`` without hashing its contents.

    ``Dataset(table)`` fingerprints by pickling the whole table (about 1 s per 100k rows);
    an in-memory table is never cached on disk, so a random fingerprint is enough.
    """
    import uuid

    import datasets

    return datasets.Dataset(table, fingerprint=uuid.uuid4().hex)


def pick_split(data: DatasetDict, split: str | None, source: str) -> Dataset:
    """Return ``data[split or "train"]``; an unknown split lists the available ones."""
    name = split or "train"
    if name not in data:
        raise DataSchemaError(
            f"split {name!r} not found; available splits: {sorted(data)}. Pass --split <name>",
            source=source,
        )
    return data[name]


def _load_saved(folder: Path, split: str | None, source: str) -> Dataset:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as error:  # noqa: BLE001 - any failure is reported with its cause
        raise DataSchemaError(f"could not load the save_to_disk folder: {_summary(error)}", source=source) from error
    if isinstance(loaded, datasets.DatasetDict):
        return pick_split(loaded, split, source)
    return loaded


def _load_with_datasets(source: str, split: str | None, exists: bool) -> Dataset:
    import datasets

    try:
        return datasets.load_dataset(source, split=split or "train")
    except Exception as error:  # noqa: BLE001 - offline failures come in many types
        if exists:
            message = f"could not read this folder with datasets.load_dataset: {_summary(error)}"
        else:
            message = (
                "does not exist locally, and the Hugging Face Hub could not be reached or has no such "
                f"dataset (we run offline; HF_HUB_OFFLINE=1). Check the path. Original error: {_summary(error)}"
            )
        raise DataSchemaError(message, source=source) from error


def _reject_beir_folder(folder: Path, source: str) -> None:
    from sbert_triplet.data.beir import is_beir_folder

    if is_beir_folder(folder):
        raise DataSchemaError(
            "is a BEIR folder (corpus, queries, qrels), not a table; read it with "
            "load_training_data / sbert_triplet.data.beir",
            source=source,
        )


def _summary(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}"


def _read_json_records(path: Path, source: str) -> list[dict[str, Any]]:
    """Records of a JSON Lines file, or of a JSON array / ``{"data": [...]}`` / column dict."""
    with open_text(path) as handle:
        text = handle.read()
    if file_suffix(path) in (".json", ".json.gz"):
        try:
            return _json_document_records(json.loads(text), source)
        except json.JSONDecodeError as error:
            if "Extra data" not in error.msg:
                raise DataSchemaError(f"invalid JSON at line {error.lineno}: {error.msg}", source=source) from error
    records = []
    for lineno, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataSchemaError(f"line {lineno}: invalid JSON ({error.msg})", source=source) from error
        if not isinstance(record, dict):
            raise DataSchemaError(
                f"line {lineno}: expected a JSON object per line, got {type(record).__name__}", source=source
            )
        records.append(record)
    return records


def _json_document_records(document: Any, source: str) -> list[dict[str, Any]]:
    if isinstance(document, dict):
        lists = [v for v in document.values() if isinstance(v, list)]
        if len(document) == 1 and lists and all(isinstance(r, dict) for r in lists[0]):
            document = lists[0]  # {"data": [{...}, ...]}
        elif document and len(lists) == len(document) and len({len(v) for v in lists}) == 1:
            keys = list(document)
            return [dict(zip(keys, row)) for row in zip(*document.values())]  # {"col": [...], ...}
    if isinstance(document, list) and all(isinstance(r, dict) for r in document):
        return document
    raise DataSchemaError(
        "expected JSON Lines, a JSON array of objects, {\"data\": [objects]} or {column: [values]}",
        source=source,
    )


def _records_to_dataset(records: list[dict[str, Any]], source: str) -> Dataset:
    """Columns in first-seen key order; an absent key is null. A mixed-type column (text
    with a stray int, NaN, list...) becomes a ``datasets.Json`` column that keeps the Python
    values, so validation can say what was found (decode it with ``validation.python_values``:
    the Dataset formatter turns NaN into None)."""
    import pyarrow as pa

    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    arrays = []
    for name in names:
        values = [record.get(name) for record in records]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            encoded = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
            arrays.append(pa.ExtensionArray.from_storage(pa.json_(), pa.array(encoded, type=pa.string())))
    if not names:
        raise DataSchemaError("no rows found (the file is empty)", source=source)
    return in_memory_dataset(pa.table(arrays, names=list(names)))


def _read_delimited(path: Path, delimiter: str, source: str) -> Dataset:
    """CSV/TSV with a header row; every column is read as a string, empty cells as ``""``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open_text(path) as handle:
        header = next(csv.reader(handle, delimiter=delimiter), None)
    if not header:
        raise DataSchemaError("no header row (the file is empty)", source=source)
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise DataSchemaError(f"duplicate column names in the header: {duplicates}", source=source)
    try:
        table = pacsv.read_csv(
            str(path),
            read_options=pacsv.ReadOptions(encoding="utf8"),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise DataSchemaError(f"could not parse the file: {_summary(error)}", source=source) from error
    return in_memory_dataset(table)


def _read_parquet(path: Path, source: str) -> Dataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except (pa.ArrowInvalid, OSError) as error:
        raise DataSchemaError(f"could not read the Parquet file: {_summary(error)}", source=source) from error
    return in_memory_dataset(table)
