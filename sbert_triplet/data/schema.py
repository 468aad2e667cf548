"""The canonical training schema and column resolution by name (validation: :mod:`.validation`).

Canonical schema: a ``datasets.Dataset`` whose columns are exactly ``anchor``,
``positive``, then ``negative_1`` ... ``negative_k`` (k >= 0), in that order, all strings.

Columns are always chosen by *name*, never by position: a file whose columns come in the
order ``negative, anchor, positive`` is read correctly, and a column that is neither
mapped nor canonical (``id``, ``label``, ...) is ignored and never used as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sbert_triplet.errors import ConfigError, DataSchemaError

MAPPING_FORM = "anchor=<column>,positive=<column>[,negative=<column> | ,negative_1=<column>,...]"
_NEGATIVE_N = re.compile(r"^negative_(\d+)$")
ALIASES = {"anchor": ("query",), "positive": ("pos",), "negative": ("neg",)}  # FlagEmbedding names


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
