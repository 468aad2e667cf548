"""Small, crash-safe writers for run outputs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``.

    A crash mid-write leaves the previous file (or none), never a truncated one.
    """
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary file next to ``path``, fsync it, then rename it
    over ``path``; the file gets the usual permissions (0666 minus the umask)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class JsonlLogger:
    """Append one JSON object per line, flushed at once (a crash loses no finished line).

    A new logger empties the file, unless ``append`` (a resumed run continues the log).
    """

    def __init__(self, path: str | Path, enabled: bool = True, append: bool = False) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled and not (append and self.path.exists()):
            self.path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
