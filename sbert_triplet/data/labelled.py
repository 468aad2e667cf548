"""Training data with a label per row: (text, class label) and (sentence1, sentence2, score).

- :func:`load_labelled` reads ``(text, label)`` rows for the batch-all / batch-hard /
  batch-semi-hard / soft-margin losses, which mine triplets inside a batch from the labels
  (rows with the same label are positives of each other, all others negatives).
- :func:`load_scored_pairs` reads ``(sentence1, sentence2, score)`` rows, e.g. an STS
  file, for the ladder loss (graded relevance).

Columns are chosen by name, never by position; other columns are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbert_triplet.data.files import in_memory_dataset
from sbert_triplet.data.validation import python_values, validate_texts
from sbert_triplet.data.sts import STS_SUFFIXES
from sbert_triplet.errors import ConfigError, DataSchemaError

if TYPE_CHECKING:
    from datasets import Dataset

LABELLED_DEFAULTS = {"text": ("text", "sentence"), "label": ("label",)}
SCORED_DEFAULTS = {
    "sentence1": ("sentence1", "sentence_A", "sentence_a"),
    "sentence2": ("sentence2", "sentence_B", "sentence_b"),
    "score": ("score", "relatedness_score"),
}


def load_labelled(
    path_or_dataset: str | Path | Dataset, columns: str | Mapping[str, str] | None = None, drop_invalid: bool = False
) -> tuple[Dataset, dict[str, Any]]:
    """Load ``(text, label)`` rows.

    Args:
        path_or_dataset: anything :func:`sbert_triplet.data.files.load_table` reads, or a
            ``datasets.Dataset``.
        columns: ``"text=<column>,label=<column>"`` (or a dict); by default the text column
            is ``text`` or else ``sentence``, and the label column is ``label``.
        drop_invalid: drop rows with an invalid text or label instead of raising.

    Returns:
        ``(dataset, report)``: columns exactly ``text`` (string) and ``label``, the labels
        kept as given: all ``int`` or all ``str`` (the training loop maps them to ids). The
        report is :func:`~sbert_triplet.data.validation.validate_texts`'s plus ``kind``
        (``"labelled"``), ``columns`` and ``num_labels``.

    Raises:
        DataSchemaError: a missing column; an empty, missing or non-string text; a label
            that is missing, NaN, a bool, a float or another type, or labels mixing ``int``
            and ``str`` (source, 0-based row and column named); no rows left.
        ConfigError: a malformed ``columns`` mapping.
    """
    from sbert_triplet.data.triplets import _as_dataset

    dataset, source = _as_dataset(path_or_dataset, None)
    chosen = _choose(dataset.column_names, _parse(columns, LABELLED_DEFAULTS), LABELLED_DEFAULTS, source)
    text_col, label_col = chosen["text"], chosen["label"]
    labels = python_values(dataset.with_format("arrow")[:].column(label_col), dataset.features[label_col])
    labels = [_as_given(value) for value in labels]
    bad_labels = [row for row, value in enumerate(labels) if not _valid_label(value)]
    if bad_labels and not drop_invalid:
        value = labels[bad_labels[0]]
        raise DataSchemaError(
            f"a label must be an int or a non-empty string, got {type(value).__name__} {value!r}. "
            f"Fix this row or pass --drop-invalid",
            source=source, row=bad_labels[0], column=label_col,
        )
    if bad_labels:
        dataset = dataset.select(sorted(set(range(len(labels))) - set(bad_labels)))
    dataset, report = validate_texts(dataset, [text_col], source, drop_invalid)
    report["rows_read"] += len(bad_labels)
    report["rows_dropped"] += len(bad_labels)
    report["dropped_by_reason"]["invalid_label"] = len(bad_labels)
    texts = dataset[text_col]
    kept_labels = [_as_given(value) for value in dataset[label_col]]
    _check_label_types(kept_labels, source, label_col)
    _check_not_empty(texts, report, source)
    report.update(kind="labelled", columns=chosen, num_labels=len(set(kept_labels)))
    return _table({"text": texts, "label": kept_labels}), report


def load_scored_pairs(
    path_or_dataset: str | Path | Dataset, columns: str | Mapping[str, str] | None = None, drop_invalid: bool = False
) -> tuple[Dataset, dict[str, Any]]:
    """Load ``(sentence1, sentence2, score)`` rows as columns ``anchor``, ``positive``, ``score``.

    Files that :func:`sbert_triplet.data.sts.load_sts` reads (STS-B ``.csv`` without a
    header, SICK ``.txt`` or a headed ``.tsv``, ``.jsonl``) go through it when ``columns``
    is not given (it checks every line and has no ``drop_invalid``). Anything else (or
    any source with ``columns``) is read with ``load_table`` and the columns are chosen by
    name: ``sentence1``/``sentence_A``, ``sentence2``/``sentence_B``, ``score``/
    ``relatedness_score``, or ``"sentence1=<column>,sentence2=<column>,score=<column>"``.

    Raises:
        DataSchemaError: a missing column, an invalid text, a non-numeric or non-finite
            score (source, row and column named; a bad score is an error even with
            ``drop_invalid``), no rows left.
        ConfigError: a malformed ``columns`` mapping.
    """
    if isinstance(path_or_dataset, (str, Path)) and columns is None and _is_sts_file(path_or_dataset):
        from sbert_triplet.data.sts import load_sts

        pairs = load_sts(path_or_dataset)
        report = {"source": str(path_or_dataset), "rows_read": len(pairs), "rows_kept": len(pairs), "rows_dropped": 0}
        report.update(kind="scored-pairs", columns={"anchor": "sentence1", "positive": "sentence2", "score": "score"})
        return _table({"anchor": pairs.sentence1, "positive": pairs.sentence2, "score": pairs.scores}), report
    from sbert_triplet.data.triplets import _as_dataset

    dataset, source = _as_dataset(path_or_dataset, None)
    chosen = _choose(dataset.column_names, _parse(columns, SCORED_DEFAULTS), SCORED_DEFAULTS, source)
    for row, value in enumerate(dataset[chosen["score"]]):
        _score(value, row, source, chosen["score"])
    dataset, report = validate_texts(dataset, [chosen["sentence1"], chosen["sentence2"]], source, drop_invalid)
    scores = [float(value) for value in dataset[chosen["score"]]]
    _check_not_empty(scores, report, source)
    report.update(kind="scored-pairs", columns={"anchor": chosen["sentence1"], "positive": chosen["sentence2"],
                                                "score": chosen["score"]})
    return _table({"anchor": dataset[chosen["sentence1"]], "positive": dataset[chosen["sentence2"]],
                   "score": scores}), report


def _is_sts_file(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return Path(path).is_file() and any(name.endswith(s) for s in STS_SUFFIXES)


def _parse(spec: str | Mapping[str, str] | None, roles: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    form = ",".join(f"{role}=<column>" for role in roles)
    if spec is None or spec == "":
        return {}
    if isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        items = [tuple(part.strip() for part in item.partition("=")[::2]) for item in str(spec).split(",") if item.strip()]
    mapping = {}
    for key, value in items:
        if key not in roles or not value:
            raise ConfigError(f"--columns: bad item {key}={value!r}; expected {form}")
        mapping[key] = value
    return mapping


def _choose(names: list[str], mapping: dict[str, str], roles: Mapping[str, tuple[str, ...]], source: str) -> dict[str, str]:
    chosen = {}
    for role, candidates in roles.items():
        column = mapping.get(role) or next((c for c in candidates if c in names), None)
        if column is None or column not in names:
            wanted = mapping.get(role) or " or ".join(repr(c) for c in candidates)
            raise DataSchemaError(
                f"no {role} column ({wanted}); columns found: {names}. Rename it or map it with "
                f"--columns {','.join(f'{r}=<column>' for r in roles)}",
                source=source,
            )
        chosen[role] = column
    if len(set(chosen.values())) < len(chosen):
        raise DataSchemaError(f"one column is given two roles: {chosen}", source=source)
    return chosen


def _as_given(value: Any) -> Any:
    """A whole float (1.0) back to the int it was written as: readers make ints floats when
    a column also holds a null or a float (e.g. JSON); any other value is returned as is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _valid_label(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and bool(value.strip()))


def _check_label_types(labels: list[Any], source: str, column: str) -> None:
    kinds = {type(v) for v in labels}
    if len(kinds) > 1:
        row = next(i for i, v in enumerate(labels) if type(v) is not type(labels[0]))
        raise DataSchemaError(
            "labels mix int and str (1 and '1' would be two labels); write them all one way",
            source=source, row=row, column=column,
        )


def _score(value: Any, row: int, source: str, column: str) -> float:
    try:
        score = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise DataSchemaError(f"score must be a finite number, got {value!r}", source=source, row=row, column=column)
    return score


def _check_not_empty(values: list[Any], report: dict[str, Any], source: str) -> None:
    if not values:
        raise DataSchemaError(f"no rows to train on ({report['rows_read']} read, {report['rows_dropped']} dropped)",
                              source=source)


def _table(columns: dict[str, list[Any]]) -> Dataset:
    import pyarrow as pa

    return in_memory_dataset(pa.table(columns))
