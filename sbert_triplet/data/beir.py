"""BEIR-format retrieval data: corpus, queries and qrels (Thakur et al., NeurIPS 2021).

Layout of a BEIR folder::

    corpus.jsonl[.gz]   {"_id": ..., "title": ..., "text": ...} per line
    queries.jsonl[.gz]  {"_id": ..., "text": ...} per line
    qrels/<split>.tsv   header "query-id<TAB>corpus-id<TAB>score", one judgement per line

Ids are always ``str``. A document's text is ``(title + " " + text).strip()``, as in BEIR
and sentence-transformers' ``InformationRetrievalEvaluator``. Only qrels with score > 0
count as relevant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from sbert_triplet.data.files import open_text
from sbert_triplet.data.types import RetrievalSet
from sbert_triplet.errors import DataSchemaError

if TYPE_CHECKING:
    from datasets import Dataset


class _Qrel(NamedTuple):
    line: int
    query_id: str
    doc_id: str
    score: int


def _jsonl_path(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def is_beir_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder with corpus.jsonl(.gz), queries.jsonl(.gz) and qrels/."""
    folder = Path(path)
    return (
        folder.is_dir()
        and _jsonl_path(folder, "corpus") is not None
        and _jsonl_path(folder, "queries") is not None
        and (folder / "qrels").is_dir()
    )


def _read_id_texts(folder: str | Path, stem: str, with_title: bool) -> dict[str, str]:
    path = _jsonl_path(Path(folder), stem)
    if path is None:
        raise DataSchemaError(f"no {stem}.jsonl or {stem}.jsonl.gz in this BEIR folder", source=str(folder))
    texts: dict[str, str] = {}
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc_id, text = str(record["_id"]), record.get("text") or ""
                title = (record.get("title") or "") if with_title else ""
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
                raise DataSchemaError(
                    f"line {lineno}: expected a JSON object with '_id' and 'text' ({type(error).__name__}: {error})",
                    source=str(path),
                ) from error
            if not isinstance(text, str) or not isinstance(title, str):
                raise DataSchemaError(f"line {lineno}: 'text' and 'title' must be strings", source=str(path))
            if doc_id in texts:
                raise DataSchemaError(f"line {lineno}: duplicate _id {doc_id!r}", source=str(path))
            texts[doc_id] = f"{title} {text}".strip()
    return texts


def load_corpus(folder: str | Path) -> dict[str, str]:
    """Document id -> ``(title + " " + text).strip()``, in file order.

    Raises:
        DataSchemaError: no corpus file, a line that is not a JSON object with ``_id`` and
            ``text``, or a duplicate ``_id`` (file and line named).
    """
    return _read_id_texts(folder, "corpus", with_title=True)


def load_queries(folder: str | Path) -> dict[str, str]:
    """Query id -> query text, in file order (all queries, judged or not).

    Raises:
        DataSchemaError: as :func:`load_corpus`.
    """
    return _read_id_texts(folder, "queries", with_title=False)


def _qrels_path(folder: str | Path, split: str) -> Path:
    qrels = Path(folder) / "qrels"
    path = qrels / f"{split}.tsv"
    if not path.is_file():
        available = sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []
        raise DataSchemaError(
            f"no qrels file for split {split!r} ({path.name}); available splits: {available}",
            source=str(folder),
        )
    return path


def _read_qrels(folder: str | Path, split: str) -> tuple[Path, list[_Qrel]]:
    """All judgements of a split in file order, with their 1-based line numbers."""
    path = _qrels_path(folder, split)
    rows: list[_Qrel] = []
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if lineno == 1 and not fields[-1].strip().lstrip("-").isdigit():
                continue  # the header "query-id corpus-id score"
            if len(fields) < 3 or not fields[0].strip() or not fields[1].strip():
                raise DataSchemaError(
                    f"line {lineno}: expected 'query-id<TAB>corpus-id<TAB>score', got {line.rstrip()!r}",
                    source=str(path),
                )
            try:
                score = int(fields[2])
            except ValueError as error:
                raise DataSchemaError(
                    f"line {lineno}: score must be an integer, got {fields[2]!r}", source=str(path)
                ) from error
            rows.append(_Qrel(lineno, fields[0].strip(), fields[1].strip(), score))
    return path, rows


def load_qrels(folder: str | Path, split: str) -> dict[str, dict[str, int]]:
    """Query id -> {document id: score} for the judgements of ``split`` with score > 0.

    Raises:
        DataSchemaError: ``qrels/<split>.tsv`` is missing (the available splits are listed)
            or a line is malformed (file and line number named).
    """
    _, rows = _read_qrels(folder, split)
    relevant: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.score > 0:
            relevant.setdefault(row.query_id, {})[row.doc_id] = row.score
    return relevant


def _check_ids(path: Path, rows: list[_Qrel], queries: dict[str, str], corpus: dict[str, str]) -> None:
    for row in rows:
        if row.query_id not in queries:
            raise DataSchemaError(f"line {row.line}: query id {row.query_id!r} is not in queries", source=str(path))
        if row.doc_id not in corpus:
            raise DataSchemaError(f"line {row.line}: corpus id {row.doc_id!r} is not in the corpus", source=str(path))


def beir_training_pairs(folder: str | Path, split: str = "train") -> Dataset:
    """(anchor = query text, positive = relevant document text) pairs, a ``datasets.Dataset``.

    One row per relevant (query, document) judgement, in qrels file order (a repeated
    judgement gives one row). SciFact train: 919 rows from 809 queries.

    Raises:
        DataSchemaError: missing split, malformed qrels line, or a qrel whose query or
            document id is unknown (file, line and id named).
    """
    import datasets

    path, rows = _read_qrels(folder, split)
    queries, corpus = load_queries(folder), load_corpus(folder)
    rows = [row for row in rows if row.score > 0]
    _check_ids(path, rows, queries, corpus)
    pairs = list(dict.fromkeys((row.query_id, row.doc_id) for row in rows))
    return datasets.Dataset.from_dict(
        {"anchor": [queries[q] for q, _ in pairs], "positive": [corpus[d] for _, d in pairs]}
    )


def load_retrieval_set(folder: str | Path, split: str = "test") -> RetrievalSet:
    """The evaluation set of ``split``: its judged queries, the whole corpus, the qrels.

    Only queries with at least one relevant (score > 0) document in ``split`` are kept,
    in queries-file order. SciFact test: 300 queries, 5,183 documents, 339 judgements.
    ``name`` is ``f"{folder name}-{split}"``.

    Raises:
        DataSchemaError: as :func:`beir_training_pairs`.
    """
    path, rows = _read_qrels(folder, split)
    queries, corpus = load_queries(folder), load_corpus(folder)
    rows = [row for row in rows if row.score > 0]
    _check_ids(path, rows, queries, corpus)
    relevant: dict[str, dict[str, int]] = {}
    for row in rows:
        relevant.setdefault(row.query_id, {})[row.doc_id] = row.score
    judged = {qid: text for qid, text in queries.items() if qid in relevant}
    name = f"{Path(folder).resolve().name}-{split}"
    return RetrievalSet(queries=judged, corpus=corpus, relevant=relevant, name=name)
