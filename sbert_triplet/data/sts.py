"""Scored sentence pairs for STS-style evaluation (Spearman between cosine and gold score).

Formats:

* STS Benchmark ``.csv`` (Cer et al., SemEval 2017): tab separated, **no header**, fields
  ``genre, filename, year, id, score, sentence1, sentence2`` and sometimes more after
  them, which are ignored. Sentences contain ``"``, so lines are split on tabs with no
  quote handling. Scores 0-5.
* JSON Lines (``.jsonl`` / ``.jsonl.gz``) with ``sentence1``, ``sentence2``, ``score``
  (e.g. the SemEval STS 2012-2016 ``stsNN.test.jsonl.gz`` files).
* SICK ``.txt`` (Marelli et al., LREC 2014), or any ``.txt``/``.tsv`` with a header: tab
  separated, columns chosen by name (``sentence_A``/``sentence1``,
  ``sentence_B``/``sentence2``, ``relatedness_score``/``score``). Scores 1-5 for SICK.

CRLF line endings and a UTF-8 BOM are accepted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from sbert_triplet.data.files import open_text
from sbert_triplet.data.types import ScoredPairs
from sbert_triplet.errors import DataSchemaError

STS_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".txt", ".tsv")
_HEADER_NAMES = {
    "sentence1": ("sentence1", "sentence_A", "sentence_a"),
    "sentence2": ("sentence2", "sentence_B", "sentence_b"),
    "score": ("score", "relatedness_score"),
}


def load_sts(path: str | Path) -> ScoredPairs:
    """Read scored sentence pairs; ``name`` is the file name without its suffix ("sts-dev").

    STS-B dev gives 1,500 pairs, SICK_trial 500, sts16.test.jsonl.gz 1,186.

    Raises:
        DataSchemaError: missing file, unsupported suffix, or a bad line (too few fields,
            empty sentence, non-numeric or non-finite score); file and line are named.
    """
    path = Path(path)
    lower = path.name.lower()
    suffix = next((s for s in sorted(STS_SUFFIXES, key=len, reverse=True) if lower.endswith(s)), None)
    if suffix is None:
        raise DataSchemaError(f"unsupported STS file type; supported: {', '.join(STS_SUFFIXES)}", source=str(path))
    if not path.is_file():
        raise DataSchemaError(f"file not found (resolved to {path.resolve()})", source=str(path))
    if suffix.startswith(".csv"):
        rows = _read_stsb(path)
    elif suffix.startswith(".jsonl"):
        rows = _read_jsonl(path)
    else:
        rows = _read_headed_tsv(path)
    sentence1, sentence2, scores = [], [], []
    for lineno, first, second, score in rows:
        _check_pair(path, lineno, first, second, score)
        sentence1.append(first)
        sentence2.append(second)
        scores.append(score)
    return ScoredPairs(sentence1, sentence2, scores, name=path.name[: -len(suffix)])


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending), skipping blank lines."""
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _score(path: Path, lineno: int, raw: object) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise DataSchemaError(f"line {lineno}: score must be a number, got {raw!r}", source=str(path)) from error


def _read_stsb(path: Path) -> Iterator[tuple[int, str, str, float]]:
    for lineno, line in _lines(path):
        fields = line.split("\t")
        if len(fields) < 7:
            raise DataSchemaError(
                f"line {lineno}: expected at least 7 tab-separated fields "
                f"(genre, file, year, id, score, sentence1, sentence2), got {len(fields)}",
                source=str(path),
            )
        yield lineno, fields[5], fields[6], _score(path, lineno, fields[4])


def _read_jsonl(path: Path) -> Iterator[tuple[int, str, str, float]]:
    for lineno, line in _lines(path):
        try:
            record = json.loads(line)
            first, second, raw = record["sentence1"], record["sentence2"], record["score"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataSchemaError(
                f"line {lineno}: expected a JSON object with sentence1, sentence2 and score "
                f"({type(error).__name__}: {error})",
                source=str(path),
            ) from error
        yield lineno, first, second, _score(path, lineno, raw)


def _read_headed_tsv(path: Path) -> Iterator[tuple[int, str, str, float]]:
    lines = _lines(path)
    header_line = next(lines, None)
    if header_line is None:
        raise DataSchemaError("the file is empty (expected a header line)", source=str(path))
    header = header_line[1].split("\t")
    index = {}
    for role, names in _HEADER_NAMES.items():
        found = [header.index(n) for n in names if n in header]
        if not found:
            raise DataSchemaError(
                f"line 1: header has no {role} column (one of {list(names)}); header: {header}",
                source=str(path),
            )
        index[role] = found[0]
    width = max(index.values()) + 1
    for lineno, line in lines:
        fields = line.split("\t")
        if len(fields) < width:
            raise DataSchemaError(
                f"line {lineno}: expected at least {width} tab-separated fields, got {len(fields)}",
                source=str(path),
            )
        yield lineno, fields[index["sentence1"]], fields[index["sentence2"]], _score(path, lineno, fields[index["score"]])


def _check_pair(path: Path, lineno: int, first: object, second: object, score: float) -> None:
    for role, text in (("sentence1", first), ("sentence2", second)):
        if not isinstance(text, str) or not text.strip():
            raise DataSchemaError(
                f"line {lineno}: {role} must be a non-empty string, got {text!r}", source=str(path)
            )
    if not math.isfinite(score):
        raise DataSchemaError(f"line {lineno}: score must be finite, got {score}", source=str(path))
