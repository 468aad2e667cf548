"""The on-disk layout of an index folder, and atomic writes.

::

    INDEX_DIR/
      manifest.json         model, dimension, normalisation, similarity, dtype, chunking,
                            corpus checksums, backend, counts; "complete" once finished
      docs.jsonl            one {"id", "text"} per corpus row, in row order
      docs.offsets.npy      int64 (N + 1,) byte offsets of the rows of docs.jsonl
      embeddings/00000.npy  (C, D) float32 / float16 embeddings of rows [0, C), one file per chunk
      faiss.index[.json]    the FAISS index and its metadata (faiss-* backends only)

Every file is written to a temporary name and renamed into place (``os.replace`` is
atomic on POSIX), so a killed run leaves either a whole chunk or none, never half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sbert_triplet.errors import ConfigError

FORMAT = "sbert-triplet-index/1"
MANIFEST = "manifest.json"
DOCS = "docs.jsonl"
OFFSETS = "docs.offsets.npy"
EMBEDDINGS = "embeddings"
FAISS_FILE = "faiss.index"
PROBE_TEXT = "sbert-triplet index probe: a cat sits on the red ball in the park"
PROBE_TOLERANCE = 1e-4


class IndexMismatchError(ConfigError):
    """An index folder does not match the model, corpus or settings it is used with."""


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename."""
    tmp = temp_path(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temporary file, fsync, then rename to ``path``."""
    tmp = temp_path(path)
    with open(tmp, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an index folder.

    Raises:
        ConfigError: no manifest (not an index folder) or an unknown format.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{folder}: not an index folder (no {MANIFEST}); build one with `sbert-triplet index`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{path}: unknown index format {manifest.get('format')!r}; expected {FORMAT!r}")
    return manifest


def chunk_path(folder: Path, i: int) -> Path:
    return folder / EMBEDDINGS / f"{i:05d}.npy"


def chunk_is_done(path: Path, rows: int, dim: int, dtype: str) -> bool:
    """True when ``path`` holds a whole ``(rows, dim)`` array of ``dtype`` (read from its header)."""
    if not path.is_file():
        return False
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return False
    return array.shape == (rows, dim) and array.dtype == np.dtype(dtype)


def load_chunks(folder: str | Path, manifest: dict[str, Any]) -> list[np.ndarray]:
    """The embedding chunks, memory-mapped (read lazily, nothing loaded up front)."""
    folder = Path(folder)
    return [np.load(chunk_path(folder, i), mmap_mode="r") for i in range(manifest["num_chunks"])]


def write_docs(folder: Path, pairs: Iterator[tuple[str, str]], checksum: Any) -> int:
    """Stream ``(id, text)`` pairs into ``docs.jsonl.new`` and its offsets; returns the row count.

    Nothing visible changes until :func:`commit_docs` renames them into place.
    """
    tmp = temp_path(folder / DOCS)
    offsets = [0]
    with open(tmp, "wb") as handle:
        for doc_id, text in pairs:
            checksum.update(doc_id, text)
            line = json.dumps({"id": doc_id, "text": text}, ensure_ascii=False).encode("utf-8") + b"\n"
            handle.write(line)
            offsets.append(offsets[-1] + len(line))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / f"{DOCS}.new")
    atomic_save_npy(folder / f"{OFFSETS}.new", np.asarray(offsets, dtype=np.int64))
    return len(offsets) - 1


def commit_docs(folder: Path) -> None:
    """Move the documents written by :func:`write_docs` into place."""
    os.replace(folder / f"{OFFSETS}.new", folder / OFFSETS)
    os.replace(folder / f"{DOCS}.new", folder / DOCS)


def iter_doc_texts(folder: Path, chunk_size: int) -> Iterator[list[str]]:
    """Texts of ``docs.jsonl`` in lists of ``chunk_size`` rows (the last may be shorter)."""
    batch: list[str] = []
    with open(folder / DOCS, encoding="utf-8") as handle:
        for line in handle:
            batch.append(json.loads(line)["text"])
            if len(batch) == chunk_size:
                yield batch
                batch = []
    if batch:
        yield batch


class DocStore:
    """Random access to the ``(id, text)`` of corpus rows, by byte offset (no full load)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / DOCS
        self.offsets = np.load(Path(folder) / OFFSETS, mmap_mode="r")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, rows: Sequence[int]) -> list[dict[str, str]]:
        """``{"id", "text"}`` of each row (in the order given)."""
        out = []
        with open(self.path, "rb") as handle:
            for row in rows:
                handle.seek(int(self.offsets[row]))
                out.append(json.loads(handle.read(int(self.offsets[row + 1] - self.offsets[row]))))
        return out


def model_probe(model: Any) -> list[float]:
    """The model's embedding of a fixed probe sentence: its fingerprint in the manifest."""
    vector = model.encode([PROBE_TEXT], convert_to_numpy=True, show_progress_bar=False)[0]  # (D,)
    return [float(v) for v in np.asarray(vector, dtype=np.float64)]


def check_model(manifest: dict[str, Any], model: Any, given: str | None = None) -> None:
    """Raise :class:`IndexMismatchError` unless ``model`` is the model the index was built with.

    The dimension and the embedding of a probe sentence (max abs difference
    <= ``PROBE_TOLERANCE``) must match the manifest.
    """
    built = manifest["model"]
    what = given or "the given model"
    get_dim = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    dim = int((get_dim() if get_dim else None) or len(model_probe(model)))
    if dim != manifest["dim"]:
        raise IndexMismatchError(
            f"this index was built with model {built['name']!r} (dimension {manifest['dim']}), but {what} gives "
            f"dimension {dim}. Search with --model {built['path']} or rebuild the index with this model"
        )
    probe = np.asarray(model_probe(model))
    diff = float(np.abs(probe - np.asarray(built["probe"])).max())
    if diff > PROBE_TOLERANCE:
        raise IndexMismatchError(
            f"this index was built with a different model: {built['name']!r} ({built['path']}), not {what} "
            f"(their embeddings of a probe sentence differ by up to {diff:.3g} > {PROBE_TOLERANCE}). "
            f"Search with --model {built['path']}, or rebuild the index with `sbert-triplet index --model ...`"
        )
