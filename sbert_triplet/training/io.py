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
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
