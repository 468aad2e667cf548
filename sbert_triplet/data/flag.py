"""The FlagEmbedding list layout: ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``.

(Xiao et al., *C-Pack: Packaged Resources To Advance General Chinese Embedding*, 2023;
FlagOpen/FlagEmbedding fine-tuning data.) Column names map automatically (``query`` ->
anchor, ``pos`` -> positive, ``neg`` -> negative, see :data:`sbert_triplet.data.schema.ALIASES`)
or through ``--columns``; any positive or negative column may hold a list.

Expansion:

* a list of positives: one row per positive, each with the row's anchor and negatives;
* a list of negatives: ``negative_1 .. negative_k`` where **k is the smallest number of
  negatives of any row**; longer lists are truncated to their first k (counted as
  ``rows_negatives_truncated``), so every row keeps the same k and nothing is padded or
  invented. A column is list layout only when every cell is a list (or null); a column
  mixing texts and lists is an error. A row with no negative at all therefore makes k = 0 (pairs): drop such rows
  first if you want hard negatives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sbert_triplet.data.validation import python_values
from sbert_triplet.errors import DataSchemaError

if TYPE_CHECKING:
    from datasets import Dataset


def is_list_column(dataset: Dataset, column: str) -> bool:
    """True when ``column`` is a list feature: every non-null cell is a list of texts.

    A column that mixes texts and lists (a ``datasets.Json`` column) is *not* list layout:
    it is ambiguous, and ``validate_texts`` reports its first list as ``not_string``."""
    return type(dataset.features[column]).__name__ in ("Sequence", "List", "LargeList")


def expand_list_layout(
    dataset: Dataset, anchor: str, positive: str, negatives: list[str], source: str, drop_invalid: bool = False
) -> tuple[Dataset, list[int], dict[str, Any]]:
    """Expand list-valued positive / negative cells into canonical rows.

    Args:
        dataset: the table; ``anchor`` holds one text per row, ``positive`` a text or a list
            of texts, ``negatives`` either one list column or several text columns.

    Returns:
        ``(dataset, row_ids, report)``: columns ``anchor, positive, negative_1 .. negative_k``
        (k as in the module docstring), ``row_ids[i]`` the 0-based file row of output row i,
        and report keys ``rows_expanded_from``, ``num_negatives``, ``rows_negatives_truncated``,
        ``rows_dropped_empty_list``. Text cells are validated afterwards by ``validate_texts``.

    Raises:
        DataSchemaError: an empty list of positives, or several negative columns mixing
            lists and texts (file, row and column named, with the fix).
    """
    table = dataset.with_format("arrow")[:]
    col = {name: python_values(table.column(name), dataset.features[name]) for name in [anchor, positive, *negatives]}
    neg_lists = _negative_lists(col, negatives, source)
    k = min((len(n) for n in neg_lists), default=0)
    out: dict[str, list[Any]] = {"anchor": [], "positive": [], **{f"negative_{j}": [] for j in range(1, k + 1)}}
    row_ids: list[int] = []
    report = {"rows_expanded_from": len(neg_lists), "num_negatives": k,
              "rows_negatives_truncated": sum(len(n) > k for n in neg_lists), "rows_dropped_empty_list": 0}
    for row, (text, pos, negs) in enumerate(zip(col[anchor], col[positive], neg_lists)):
        positives = pos if isinstance(pos, list) else [pos]
        if not positives:
            if not drop_invalid:
                raise DataSchemaError(
                    "empty list of positives; give at least one positive or pass --drop-invalid",
                    source=source, row=row, column=positive,
                )  # fmt: skip
            report["rows_dropped_empty_list"] += 1
            continue
        for one in positives:
            out["anchor"].append(text)
            out["positive"].append(one)
            for j in range(k):
                out[f"negative_{j + 1}"].append(negs[j])
            row_ids.append(row)
    return _table(out), row_ids, report


def _negative_lists(col: dict[str, list[Any]], negatives: list[str], source: str) -> list[list[Any]]:
    """Per row, the list of its negatives (one list column, or the values of several columns)."""
    n = len(next(iter(col.values())))
    if not negatives:
        return [[] for _ in range(n)]
    if len(negatives) == 1:
        return [v if isinstance(v, list) else [v] for v in col[negatives[0]]]
    for name in negatives:
        row = next((i for i, v in enumerate(col[name]) if isinstance(v, list)), None)
        if row is not None:
            raise DataSchemaError(
                f"a list of negatives in one of several negative columns {negatives}; use one "
                "list column (--columns negative=<column>) or one text per negative_<i> column",
                source=source, row=row, column=name,
            )  # fmt: skip
    return [list(values) for values in zip(*(col[name] for name in negatives))]


def _table(columns: dict[str, list[Any]]) -> Dataset:
    """Columns of texts -> Dataset; a column with non-strings becomes a Json column so that
    ``validate_texts`` can say what was found."""
    import json

    import pyarrow as pa

    from sbert_triplet.data.files import in_memory_dataset

    arrays = []
    for values in columns.values():
        if all(isinstance(v, str) for v in values):
            arrays.append(pa.array(values, type=pa.string()))
        else:
            encoded = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
            arrays.append(pa.ExtensionArray.from_storage(pa.json_(), pa.array(encoded, type=pa.string())))
    return in_memory_dataset(pa.table(arrays, names=list(columns)))
