"""Encode texts in batches, and encode a whole corpus to disk chunk by chunk, resumably.

:func:`encode_texts` is the one encoding loop of the index path: the ``index`` command
and the retrieval evaluator both use it. :func:`encode_to_disk` streams the corpus into
``docs.jsonl``, then encodes ``chunk_size`` documents at a time and writes each chunk's
``(C, D)`` embeddings to its own file (temporary name, then rename). Memory holds one
chunk of texts and embeddings, whatever the corpus size. Rerun after an interruption
with the same arguments: finished chunks are found on disk and not encoded again.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbert_triplet.errors import ConfigError
from sbert_triplet.index import store
from sbert_triplet.index.config import IndexConfig
from sbert_triplet.index.corpus import CorpusSpec, IdChecksum, iter_corpus


def encode_texts(model: Any, texts: Sequence[str], batch_size: int = 64, progress: Any = None) -> np.ndarray:
    """Embeddings ``(len(texts), D)`` float32 of ``texts``, in input order.

    Texts are encoded longest first in batches of ``batch_size`` (little padding), with
    ``model.encode(batch, convert_to_tensor=True)``; ``progress`` (a tqdm bar) is advanced
    per batch. The model's train / eval mode is restored afterwards (``encode`` switches
    a SentenceTransformer to eval mode).

    Raises:
        ValueError: the encoder does not return one row per text.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    was_training = getattr(model, "training", None)
    parts = []
    try:
        for start in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            out = model.encode(batch, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
            out = torch.stack([torch.as_tensor(r) for r in out]) if isinstance(out, (list, tuple)) else out
            parts.append(torch.as_tensor(out).detach().float().cpu().numpy())  # (B, D)
            if progress is not None:
                progress.update(len(batch))
    finally:
        if was_training is not None and hasattr(model, "train"):
            model.train(was_training)
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    sorted_emb = np.concatenate(parts)  # (C, D) longest-first order
    if sorted_emb.ndim != 2 or sorted_emb.shape[0] != len(texts):
        raise ValueError(f"the encoder returned shape {sorted_emb.shape} for {len(texts)} texts; expected (n_texts, dim)")
    embeddings = np.empty_like(sorted_emb)  # (C, D)
    embeddings[np.asarray(order)] = sorted_emb
    return embeddings


def model_score(model: Any, score: str | None) -> str:
    """``score``, or the model's ``similarity_fn_name`` when it is cosine / dot.

    Raises:
        ConfigError: the model's similarity is neither (e.g. euclidean) and no score was given.
    """
    if score is not None:
        return score
    name = getattr(model, "similarity_fn_name", None) or "cosine"
    name = {"dot_product": "dot"}.get(str(name), str(name))
    if name not in ("cosine", "dot"):
        raise ConfigError(f"the model's similarity is {name!r}; the index supports cosine and dot: pass --score cosine")
    return name


def _manifest(model: Any, model_ref: str | None, spec: CorpusSpec, cfg: IndexConfig) -> dict[str, Any]:
    from sbert_triplet.models import DEFAULT_MODEL_NAME, ends_with_normalize, resolve_model

    probe = store.model_probe(model)
    path = resolve_model(model_ref)
    path = str(Path(path).resolve()) if Path(path).exists() else path
    return {
        "format": store.FORMAT,
        "model": {"name": model_ref or DEFAULT_MODEL_NAME, "path": path, "probe": probe},
        "dim": len(probe),
        "normalized": ends_with_normalize(model),
        "similarity_fn_name": str(getattr(model, "similarity_fn_name", None) or "cosine"),
        "score": model_score(model, cfg.score),
        "max_seq_length": getattr(model, "max_seq_length", None),
        "dtype": cfg.dtype,
        "chunk_size": cfg.chunk_size,
        "corpus": {"path": str(spec.path), "id_column": spec.id_column, "text_column": spec.text_column, "split": spec.split},
        "backend": cfg.backend,
        "backend_params": cfg.backend_options(),
        "complete": False,
    }


_MUST_MATCH = ("dim", "score", "dtype", "chunk_size", "max_seq_length", "num_docs", "ids_sha256", "docs_sha256")


def _check_resume(old: dict[str, Any] | None, new: dict[str, Any], output: Path) -> None:
    if old is None:
        return
    differ = [key for key in _MUST_MATCH if old.get(key) != new.get(key)]
    probe_diff = float(np.abs(np.asarray(old["model"]["probe"]) - np.asarray(new["model"]["probe"])).max()) \
        if len(old["model"]["probe"]) == len(new["model"]["probe"]) else float("inf")
    if probe_diff > store.PROBE_TOLERANCE:
        differ.insert(0, f"model ({old['model']['name']!r} then, {new['model']['name']!r} now)")
    if differ:
        raise store.IndexMismatchError(
            f"{output} already holds an index built differently (differs in: {', '.join(differ)}); "
            "rerun with the same model, corpus and settings to resume, or choose a new --output"
        )


def _encode_chunks(model: Any, output: Path, manifest: dict, cfg: IndexConfig, on_chunk: Callable[[int], None] | None) -> dict:
    from tqdm.auto import tqdm

    n, size, dim = manifest["num_docs"], cfg.chunk_size, manifest["dim"]
    done = [store.chunk_is_done(store.chunk_path(output, i), min(size, n - i * size), dim, cfg.dtype)
            for i in range(manifest["num_chunks"])]
    skipped_docs = sum(min(size, n - i * size) for i, d in enumerate(done) if d)
    bar = tqdm(total=n, initial=skipped_docs, unit="doc", desc="encoding", disable=not cfg.show_progress_bar, file=sys.stderr)
    encoded, seconds = [], 0.0
    with bar:
        for i, texts in enumerate(store.iter_doc_texts(output, size)):
            if done[i]:
                continue
            start = time.perf_counter()
            embeddings = encode_texts(model, texts, cfg.batch_size, progress=bar)  # (C, D) float32
            store.atomic_save_npy(store.chunk_path(output, i), embeddings.astype(cfg.dtype))
            seconds += time.perf_counter() - start
            encoded.append(i)
            if on_chunk is not None:
                on_chunk(i)
    docs = n - skipped_docs
    return {"chunks_encoded": encoded, "chunks_skipped": [i for i, d in enumerate(done) if d],
            "docs_encoded": docs, "encode_seconds": round(seconds, 3),
            "docs_per_second": round(docs / seconds, 2) if seconds > 0 else None}


def _build_backend(output: Path, manifest: dict, cfg: IndexConfig) -> float:
    if cfg.backend == "exact":
        return 0.0
    from sbert_triplet.index.base import build_index

    start = time.perf_counter()
    index = build_index(store.load_chunks(output, manifest), cfg.backend, manifest["score"], **cfg.backend_options())
    tmp = store.temp_path(output / store.FAISS_FILE)
    index.save(tmp)
    Path(f"{tmp}.json").replace(output / f"{store.FAISS_FILE}.json")
    tmp.replace(output / store.FAISS_FILE)
    return round(time.perf_counter() - start, 3)


def encode_to_disk(
    model: Any,
    spec: CorpusSpec,
    output: str | Path,
    cfg: IndexConfig = IndexConfig(),
    model_ref: str | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Encode the corpus of ``spec`` with ``model`` into the index folder ``output``.

    Args:
        model: a SentenceTransformer (or anything with its ``encode``).
        spec: the corpus source and its id / text columns.
        cfg: dtype, chunk size, backend and its options.
        model_ref: the ``--model`` string recorded in the manifest (None = the default model).
        on_chunk: called with the chunk number after each chunk is written (progress hooks, tests).

    Returns:
        A report: ``num_docs``, ``dim``, ``num_chunks``, ``chunks_encoded``, ``chunks_skipped``,
        ``docs_per_second``, ``encode_seconds``, ``build_seconds``, ``peak_rss_mb``.

    Raises:
        IndexMismatchError: ``output`` holds an index of another model, corpus or settings.
        DataSchemaError: the corpus cannot be read, or is empty.
        ConfigError: bad settings.
    """
    output = Path(output)
    (output / store.EMBEDDINGS).mkdir(parents=True, exist_ok=True)
    for stale in output.glob("**/.*.tmp*"):  # left by a killed run
        stale.unlink()
    old = store.read_manifest(output) if (output / store.MANIFEST).is_file() else None
    manifest = _manifest(model, model_ref, spec, cfg)
    checksum = IdChecksum()
    n = store.write_docs(output, iter_corpus(spec), checksum)
    if n == 0:
        from sbert_triplet.errors import DataSchemaError

        raise DataSchemaError("the corpus has no documents", source=str(spec.path))
    manifest.update(num_docs=n, num_chunks=-(-n // cfg.chunk_size), ids_sha256=checksum.ids_sha256,
                    docs_sha256=checksum.docs_sha256)
    _check_resume(old, manifest, output)
    store.commit_docs(output)
    store.write_manifest(output, manifest)
    report = _encode_chunks(model, output, manifest, cfg, on_chunk)
    report["build_seconds"] = _build_backend(output, manifest, cfg)
    report.update(num_docs=n, dim=manifest["dim"], num_chunks=manifest["num_chunks"], backend=cfg.backend,
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    manifest.update(complete=True, stats={k: report[k] for k in ("docs_per_second", "encode_seconds", "build_seconds")})
    store.write_manifest(output, manifest)
    return report
