"""``sbert-triplet data inspect``: what a data source is, how it will be read, what is dropped.

:func:`inspect_data` detects the kind of a source and reads it with the loader training or
evaluation would use, in ``drop_invalid`` mode so that it can count what *would* be
dropped instead of stopping at the first bad row. Kinds: ``triplets``, ``pairs``, ``list``
(FlagEmbedding list layout), ``nli`` (premise / hypothesis / gold label pairs), ``beir``
(folder), ``sts`` (scored pairs: STS-B ``.csv``, SICK ``.txt``, ``sentence1/sentence2/score``
JSON Lines) and ``labelled`` (``text`` / ``label``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STS_SCORE_NAMES = ("score", "relatedness_score")


def inspect_data(path: str | Path, columns: str | None = None, split: str | None = None, rows: int = 3) -> dict[str, Any]:
    """Describe ``path`` as JSON-ready data.

    Args:
        path: a file, a BEIR folder, a ``save_to_disk`` folder or a cached Hub id.
        columns: a ``--columns`` mapping; given, the source is read as triplets / pairs.
        split: BEIR qrels split (default ``train``) or a saved DatasetDict split.
        rows: how many of the first rows (as they will be used) to include.

    Returns:
        ``{"source", "kind", "columns" (role -> column in the data), "counts" ({"rows_read",
        "rows_valid", "would_drop": {reason: rows}}), "rows" (list of {column: value}),
        "details" (the loader's extra report keys)}``.

    Raises:
        DataSchemaError: the source cannot be read or does not fit the detected kind (file,
            row and column named, as the loaders raise them).
        ConfigError: a malformed ``columns`` mapping.
    """
    kind = detect_kind(path, columns, split)
    dataset, report = _load(kind, path, columns, split)
    skip = {"source", "kind", "columns", "rows_read", "rows_kept", "rows_dropped", "dropped_by_reason"}
    return {
        "source": str(path),
        "kind": report.get("kind", kind) if kind != "sts" else "sts",
        "columns": report.get("columns", {}),
        "counts": _counts(kind, len(dataset), report),
        "rows": [dict(r) for r in dataset.select(range(min(rows, len(dataset))))],
        "details": {k: v for k, v in report.items() if k not in skip and not k.startswith("dropped_") and v != []},
    }


def detect_kind(path: str | Path, columns: str | None = None, split: str | None = None) -> str:
    """The kind of ``path`` (module docstring); ``triplets`` also stands for pairs and list layout.

    Raises:
        DataSchemaError: the source cannot be read.
    """
    from sbert_triplet.data.beir import is_beir_folder
    from sbert_triplet.data.files import load_table
    from sbert_triplet.data.nli import nli_columns

    if is_beir_folder(path):
        return "beir"
    if columns:
        return "triplets"
    if _is_sts_text(Path(path)):
        return "sts"
    names = load_table(path, split=split).column_names
    if any(a in names for a in ("anchor", "query")):
        return "triplets"
    if nli_columns(names) is not None:
        return "nli"
    if any(s in names for s in STS_SCORE_NAMES) and any(n in names for n in ("sentence1", "sentence_A")):
        return "sts"
    if "label" in names and any(n in names for n in ("text", "sentence")):
        return "labelled"
    return "triplets"


def _is_sts_text(path: Path) -> bool:
    """SICK-style ``.txt`` with a header, or an STS-B ``.csv`` (tabs, no header, score in field 5)."""
    from sbert_triplet.data.files import open_text

    name = path.name.lower()
    if not path.is_file():
        return False
    if name.endswith(".txt"):
        return True
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        return False
    with open_text(path) as handle:
        fields = handle.readline().rstrip("\r\n").split("\t")
    try:
        return len(fields) >= 7 and 0.0 <= float(fields[4]) <= 5.0
    except ValueError:
        return False


def _load(kind: str, path: str | Path, columns: str | None, split: str | None) -> tuple[Any, dict[str, Any]]:
    if kind == "sts":
        from sbert_triplet.data.labelled import load_scored_pairs

        return load_scored_pairs(path, drop_invalid=True)
    if kind == "labelled":
        from sbert_triplet.data.labelled import load_labelled

        return load_labelled(path, drop_invalid=True)
    from sbert_triplet.data.triplets import load_training_data

    return load_training_data(path, split=split, columns=columns, drop_invalid=True)


def _counts(kind: str, valid: int, report: dict[str, Any]) -> dict[str, Any]:
    if kind == "nli":
        would_drop = {k[len("dropped_"):]: report[k] for k in ("dropped_neutral", "dropped_no_label", "dropped_invalid")}
        would_drop.update({k: v for k, v in report["dropped_by_reason"].items() if v})
        return {"rows_read": report["rows_read"], "rows_valid": valid, "would_drop": would_drop}
    would_drop = {k: v for k, v in report.get("dropped_by_reason", {}).items() if v}
    return {"rows_read": report.get("rows_read", valid), "rows_valid": valid, "would_drop": would_drop}


def format_inspection(info: dict[str, Any], width: int = 100) -> str:
    """Plain-text rendering of :func:`inspect_data`'s result (one screen, long texts cut)."""
    counts = info["counts"]
    lines = [
        f"source:  {info['source']}",
        f"kind:    {info['kind']}",
        "columns: " + (", ".join(f"{role} <- {col}" for role, col in info["columns"].items()) or "-"),
        f"rows:    read {counts['rows_read']}, valid {counts['rows_valid']}",
        "would drop: " + (", ".join(f"{k} {v}" for k, v in counts["would_drop"].items()) or "nothing"),
    ]
    lines += [f"{k}: {v}" for k, v in info["details"].items()]
    for i, row in enumerate(info["rows"]):
        lines.append(f"--- row {i}")
        for key, value in row.items():
            text = str(value)
            lines.append(f"  {key}: {text if len(text) <= width else text[: width - 3] + '...'}")
    return "\n".join(lines)
