"""Read a corpus to index as a stream of ``(doc_id, text)`` pairs, in file order.

Sources:

- a BEIR folder (``corpus.jsonl[.gz]`` inside), or any JSONL file whose records carry
  ``_id``: the BEIR layout, text = ``(title + " " + text).strip()`` as in
  :mod:`sbert_triplet.data.beir`; read line by line (memory does not grow with the file);
- any other JSONL file: columns ``id`` and ``text`` (or the names given), line by line;
- CSV / TSV / Parquet / JSON files, ``save_to_disk`` folders and Hub datasets: read with
  :func:`sbert_triplet.data.files.load_table` (Arrow), then iterated in batches.

Ids become ``str``; a duplicate id, a missing id or a text that is not a string is an
error naming the source, the row and the column.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sbert_triplet.data.files import file_suffix, open_text
from sbert_triplet.errors import DataSchemaError


@dataclass(frozen=True)
class CorpusSpec:
    """Where the corpus is and which columns hold the id and the text.

    Attributes:
        path: BEIR folder, data file, ``save_to_disk`` folder or Hub id.
        id_column: id column; None = ``_id`` if the records have it, else ``id``.
        text_column: text column (default ``text``); BEIR records prepend ``title``.
        split: dataset split for ``save_to_disk`` folders / Hub datasets (default ``train``).
    """

    path: str
    id_column: str | None = None
    text_column: str = "text"
    split: str | None = None


def _beir_corpus_file(folder: Path) -> Path | None:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def iter_corpus(spec: CorpusSpec) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)`` for every document of ``spec``, in file order.

    Raises:
        DataSchemaError: the source is missing or unreadable, a row lacks the id or text
            column, a text is not a string, or an id repeats.
    """
    path = Path(spec.path)
    if path.is_dir() and _beir_corpus_file(path) is not None:
        rows = _iter_jsonl(_beir_corpus_file(path), spec)
    elif path.is_file() and file_suffix(path) in (".jsonl", ".jsonl.gz"):
        rows = _iter_jsonl(path, spec)
    else:
        rows = _iter_table(spec)
    seen: set[str] = set()
    for row, (doc_id, text) in enumerate(rows):
        if doc_id in seen:
            raise DataSchemaError(f"duplicate document id {doc_id!r}; ids must be unique", source=spec.path, row=row)
        seen.add(doc_id)
        yield doc_id, text


def _record_to_pair(record: dict, spec: CorpusSpec, source: str, row: int) -> tuple[str, str]:
    id_column = spec.id_column or ("_id" if "_id" in record else "id")
    doc_id = record.get(id_column)
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
        raise DataSchemaError(
            f"no document id; found columns {sorted(record)}. Pass --id-column <name>",
            source=source, row=row, column=id_column,
        )
    text = record.get(spec.text_column)
    if not isinstance(text, str):
        raise DataSchemaError(
            f"text must be a string, got {type(text).__name__} (columns: {sorted(record)}); pass --text-column <name>",
            source=source, row=row, column=spec.text_column,
        )
    if id_column == "_id" and spec.text_column == "text":  # BEIR: title + " " + text
        title = record.get("title") or ""
        text = f"{title if isinstance(title, str) else ''} {text}".strip()
    return str(doc_id), text


def _iter_jsonl(path: Path, spec: CorpusSpec) -> Iterator[tuple[str, str]]:
    row = 0
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataSchemaError(f"line {lineno}: invalid JSON ({error.msg})", source=str(path)) from error
            if not isinstance(record, dict):
                raise DataSchemaError(f"line {lineno}: expected a JSON object", source=str(path))
            yield _record_to_pair(record, spec, str(path), row)
            row += 1


def _iter_table(spec: CorpusSpec) -> Iterator[tuple[str, str]]:
    from sbert_triplet.data.files import load_table

    table = load_table(spec.path, split=spec.split)
    columns = set(table.column_names)
    id_column = spec.id_column or ("_id" if "_id" in columns else "id")
    missing = [c for c in (id_column, spec.text_column) if c not in columns]
    if missing:
        raise DataSchemaError(
            f"missing column(s) {missing}; found {sorted(columns)}. Pass --id-column / --text-column",
            source=spec.path,
        )
    keep = [c for c in (id_column, spec.text_column, "title") if c in columns]
    row = 0
    for batch in table.select_columns(keep).iter(batch_size=1000):
        for i in range(len(batch[id_column])):
            record = {c: batch[c][i] for c in keep}
            yield _record_to_pair(record, CorpusSpec(spec.path, id_column, spec.text_column), spec.path, row)
            row += 1


class IdChecksum:
    """sha256 of the ids (``ids_sha256``) and of the (id, text) pairs (``docs_sha256``), in order."""

    def __init__(self) -> None:
        self._ids, self._docs = hashlib.sha256(), hashlib.sha256()
        self.count = 0

    def update(self, doc_id: str, text: str) -> None:
        self._ids.update(doc_id.encode("utf-8") + b"\n")
        self._docs.update(json.dumps([doc_id, text], ensure_ascii=False).encode("utf-8") + b"\n")
        self.count += 1

    @property
    def ids_sha256(self) -> str:
        return self._ids.hexdigest()

    @property
    def docs_sha256(self) -> str:
        return self._docs.hexdigest()
