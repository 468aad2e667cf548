"""One exception tree for the package.

Every error a user can cause derives from :class:`SbertTripletError`; the ones about
bad values also derive from :class:`ValueError` so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class SbertTripletError(Exception):
    """Base class of every error raised on purpose by sbert_triplet."""


class ConfigError(SbertTripletError, ValueError):
    """A configuration value (CLI flag, YAML key, dataclass field) is invalid or unknown."""


class DataSchemaError(SbertTripletError, ValueError):
    """A data file or row does not fit the expected schema.

    The message names the source (file or dataset), the row (0-based, in file order)
    and the column when they are known, and says how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.column = column
        where = []
        if source is not None:
            where.append(f"{source}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ModelNotFoundError(SbertTripletError):
    """No model could be resolved from the given path or hub id (we are offline-first)."""


class NonFiniteLossError(SbertTripletError):
    """Training stopped: too many steps in a row had a non-finite (NaN / inf) loss or gradient."""
