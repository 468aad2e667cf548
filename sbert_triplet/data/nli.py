"""NLI pairs (SNLI, MultiNLI, GLUE-style) -> (anchor, positive, negative_1) triplets.

Rule (the one that made ``/work/shared/data/{snli,mnli}/*_triplets_*.jsonl.gz``; Reimers &
Gurevych, *Making Monolingual Sentence Embeddings Multilingual*, 2020, and the SBERT NLI
training script use the same idea):

1. Read the rows in file order.
2. Group them by prompt: SNLI (``captionID`` and ``pairID`` columns) by
   ``(captionID, pairID[:-1])``; MultiNLI (``pairID`` only) by ``(pairID[:-1], premise)``;
   with ``promptID`` by ``(promptID, premise)``; data without ids by the premise text.
3. Keep only entailment and contradiction pairs (by the gold label, never by the pairID
   suffix); neutral and no-consensus (``"-"``, null, ``-1``) rows are dropped and counted.
4. Emit one triplet per (entailment hypothesis, contradiction hypothesis) combination of a
   group; groups in first-appearance order, hypotheses in file order.

Columns (chosen by name): premise ``sentence1`` or ``premise``; hypothesis ``sentence2`` or
``hypothesis``; label ``gold_label`` or ``label``, either the words ``entailment``,
``neutral``, ``contradiction`` (any case) or GLUE's numbers 0 / 1 / 2 (int or string).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbert_triplet.errors import DataSchemaError

if TYPE_CHECKING:
    from datasets import Dataset

PREMISE_NAMES = ("sentence1", "premise")
HYPOTHESIS_NAMES = ("sentence2", "hypothesis")
LABEL_NAMES = ("gold_label", "label")
_LABELS = {
    "entailment": "entailment", "0": "entailment",
    "neutral": "neutral", "1": "neutral",
    "contradiction": "contradiction", "2": "contradiction",
    "-": None, "": None, "-1": None,
}  # fmt: skip


def nli_columns(column_names: Iterable[str]) -> dict[str, str] | None:
    """``{"premise", "hypothesis", "label"}`` -> column name when the table looks like NLI, else None."""
    names = list(column_names)
    chosen = {}
    for role, options in (("premise", PREMISE_NAMES), ("hypothesis", HYPOTHESIS_NAMES), ("label", LABEL_NAMES)):
        found = next((n for n in options if n in names), None)
        if found is None:
            return None
        chosen[role] = found
    return chosen


def load_nli_triplets(
    path: str | Path | Dataset, drop_report: bool = True, drop_invalid: bool = False
) -> tuple[Dataset, dict[str, Any]]:
    """Read NLI pairs and build triplets with the rule of the module docstring.

    Args:
        path: an SNLI ``.jsonl(.gz)``, a MultiNLI / GLUE ``.csv``/``.tsv``/``.jsonl``, anything
            :func:`sbert_triplet.data.files.load_table` reads, or a ``datasets.Dataset``.
        drop_report: True: neutral and no-label rows are dropped and counted. False: a row
            without a gold label (``"-"``, null, ``-1``) is an error (strict mode); neutral
            rows are still dropped, they are a label, just not used.
        drop_invalid: drop an entailment/contradiction row whose premise or hypothesis is
            not a non-empty string (counted as ``dropped_invalid``) instead of raising.

    Returns:
        ``(dataset, report)``: columns exactly ``anchor`` (premise), ``positive`` (entailed
        hypothesis), ``negative_1`` (contradicting hypothesis), all strings, texts as
        written (not stripped). Report keys: ``source``, ``kind`` (``"nli"``), ``columns``,
        ``rows_read``, ``dropped_neutral``, ``dropped_no_label``, ``dropped_invalid``,
        ``groups``, ``groups_without_triplet``, ``triplets``. SNLI dev gives 3,226 triplets.

    Raises:
        DataSchemaError: missing premise/hypothesis/label columns, an unknown label value,
            an invalid text, or no triplet at all (file, 0-based row and column named).
    """
    from sbert_triplet.data.triplets import _as_dataset

    dataset, source = _as_dataset(path, None)
    chosen = nli_columns(dataset.column_names)
    if chosen is None:
        raise DataSchemaError(
            f"not NLI data: need a premise ({'/'.join(PREMISE_NAMES)}), a hypothesis "
            f"({'/'.join(HYPOTHESIS_NAMES)}) and a label ({'/'.join(LABEL_NAMES)}) column; columns "
            f"found: {dataset.column_names}. Rename them, or load pre-made triplets with load_triplets",
            source=source,
        )
    groups, report = _group(dataset, chosen, source, drop_report, drop_invalid)
    anchors, positives, negatives = [], [], []
    for premise, entailed, contradicting in groups.values():
        if not (entailed and contradicting):
            report["groups_without_triplet"] += 1
        for positive in entailed:
            for negative in contradicting:
                anchors.append(premise)
                positives.append(positive)
                negatives.append(negative)
    report.update(groups=len(groups), triplets=len(anchors))
    if not anchors:
        raise DataSchemaError(
            "no triplet could be built: no prompt has both an entailment and a contradiction "
            f"hypothesis ({_counts(report)})",
            source=source,
        )
    return _table(anchors, positives, negatives), report


def _group(
    dataset: Dataset, chosen: dict[str, str], source: str, drop_report: bool, drop_invalid: bool
) -> tuple[dict[Any, tuple[str, list[str], list[str]]], dict[str, Any]]:
    """Prompt key -> (premise, entailed hypotheses, contradicting hypotheses), in first-seen order."""
    premises = dataset[chosen["premise"]]
    hypotheses = dataset[chosen["hypothesis"]]
    labels = dataset[chosen["label"]]
    keys = _group_keys(dataset, premises)
    report: dict[str, Any] = {
        "source": source, "kind": "nli", "columns": dict(chosen), "rows_read": len(premises),
        "dropped_neutral": 0, "dropped_no_label": 0, "dropped_invalid": 0,
        "groups": 0, "groups_without_triplet": 0, "triplets": 0,
    }  # fmt: skip
    groups: dict[Any, tuple[str, list[str], list[str]]] = {}
    for row, (key, premise, hypothesis, raw) in enumerate(zip(keys, premises, hypotheses, labels)):
        label = _label(raw, row, source, chosen["label"])
        group = groups.setdefault(key, (premise, [], []))
        if label is None and not drop_report:
            raise DataSchemaError(
                f"no gold label ({raw!r}); pass drop_report=True to drop and count such rows",
                source=source, row=row, column=chosen["label"],
            )  # fmt: skip
        if label != "entailment" and label != "contradiction":
            report["dropped_neutral" if label == "neutral" else "dropped_no_label"] += 1
            continue
        bad = next((c for c, v in (("premise", premise), ("hypothesis", hypothesis)) if not _text_ok(v)), None)
        if bad is not None:
            if drop_invalid:
                report["dropped_invalid"] += 1
                continue
            raise DataSchemaError(
                f"expected a non-empty string, got {(premise if bad == 'premise' else hypothesis)!r}. "
                "Fix this row or pass --drop-invalid to skip it",
                source=source, row=row, column=chosen[bad],
            )  # fmt: skip
        group[1 if label == "entailment" else 2].append(hypothesis)
    return groups, report


def _group_keys(dataset: Dataset, premises: list[Any]) -> list[Any]:
    names = dataset.column_names
    if "pairID" in names:
        pair_prompts = [None if p is None else str(p)[:-1] for p in dataset["pairID"]]
        if "captionID" in names:
            return list(zip(dataset["captionID"], pair_prompts))
        return list(zip(pair_prompts, premises))
    if "promptID" in names:
        return list(zip(dataset["promptID"], premises))
    return list(premises)


def _label(raw: Any, row: int, source: str, column: str) -> str | None:
    if raw is None or (isinstance(raw, float) and raw != raw):
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        key = None
    else:
        key = str(raw).strip().lower()
    if key not in _LABELS:
        raise DataSchemaError(
            f"unknown NLI label {raw!r}; expected entailment / neutral / contradiction, 0 / 1 / 2 "
            "(GLUE: 0 entailment, 1 neutral, 2 contradiction) or '-' / -1 for no label. Fix the value "
            "or choose another label column",
            source=source, row=row, column=column,
        )  # fmt: skip
    return _LABELS[key]


def _text_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _counts(report: dict[str, Any]) -> str:
    keys = ("rows_read", "dropped_neutral", "dropped_no_label", "dropped_invalid", "groups")
    return ", ".join(f"{k}={report[k]}" for k in keys)


def _table(anchors: list[str], positives: list[str], negatives: list[str]) -> Dataset:
    import pyarrow as pa

    from sbert_triplet.data.files import in_memory_dataset

    arrays = [pa.array(v, type=pa.string()) for v in (anchors, positives, negatives)]
    return in_memory_dataset(pa.table(arrays, names=["anchor", "positive", "negative_1"]))
