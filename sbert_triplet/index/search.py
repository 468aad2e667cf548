"""Open an index folder and search it with texts: ids, scores and texts of the top-k.

Sources of queries for :func:`read_queries`: a BEIR ``queries.jsonl`` (``_id``, ``text``),
any JSONL / CSV / TSV / Parquet file with ``id`` and ``text`` columns (by name), or a
``.txt`` file with one query per line (ids ``q1``, ``q2``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbert_triplet.errors import ConfigError, DataSchemaError
from sbert_triplet.index import store
from sbert_triplet.index.base import VectorIndex, build_index


@dataclass
class IndexedCorpus:
    """A loaded index folder: its manifest, documents, vector index and (checked) model."""

    folder: Path
    manifest: dict[str, Any]
    docs: store.DocStore
    index: VectorIndex
    model: Any = None

    def search(self, queries: list[str], k: int = 10, batch_size: int = 64) -> list[list[dict[str, Any]]]:
        """The top-``k`` documents of each query text, best first.

        Returns:
            Per query, a list of ``{"rank", "id", "score", "text"}`` (rank from 1; score in the
            index's similarity, cosine in [-1, 1] or dot; ``-inf`` for all-zero documents).

        Raises:
            ConfigError: the index was opened without a model.
        """
        if self.model is None:
            raise ConfigError("this index was opened without a model; pass model= to open_index to search with texts")
        from sbert_triplet.index.encode import encode_texts

        embeddings = encode_texts(self.model, queries, batch_size)  # (Q, D)
        scores, rows = self.index.search(embeddings, k)  # (Q, k) each
        return [self._hits(score_row, row_row) for score_row, row_row in zip(scores.tolist(), rows.tolist())]

    def _hits(self, scores: list[float], rows: list[int]) -> list[dict[str, Any]]:
        kept = [(s, r) for s, r in zip(scores, rows) if r >= 0]
        docs = self.docs.get([r for _, r in kept])
        return [{"rank": i + 1, "id": d["id"], "score": s, "text": d["text"]} for i, ((s, _), d) in enumerate(zip(kept, docs))]


def open_index(
    folder: str | Path,
    model: Any = None,
    model_ref: str | None = None,
    backend: str | None = None,
    ef_search: int | None = None,
    nprobe: int | None = None,
) -> IndexedCorpus:
    """Load an index folder written by ``sbert-triplet index``.

    Args:
        model: the encoder for query texts; checked against the manifest (dimension and a
            probe embedding). None opens the index for vector search only.
        model_ref: how the user named the model, for error messages.
        backend: None = the backend it was built with; ``"exact"`` always works (it reads
            the embedding chunks); another FAISS backend is built in memory.
        ef_search, nprobe: HNSW / IVF search settings (None keeps the built ones).

    Raises:
        ConfigError: not an index folder, or an unfinished one.
        IndexMismatchError: ``model`` is not the model the index was built with.
    """
    folder = Path(folder)
    manifest = store.read_manifest(folder)
    if not manifest.get("complete"):
        raise ConfigError(f"{folder}: the index is unfinished; rerun the same `sbert-triplet index` command to resume it")
    if model is not None:
        store.check_model(manifest, model, model_ref)
    backend = backend or manifest["backend"]
    if backend == manifest["backend"] and backend.startswith("faiss-"):
        from sbert_triplet.index.faiss_backend import FaissIndex

        index = FaissIndex.load(folder / store.FAISS_FILE)
        index.set_search_params(ef_search=ef_search, nprobe=nprobe)
    else:
        options: dict[str, int] = {}
        if backend == "faiss-hnsw" and ef_search is not None:
            options["ef_search"] = ef_search
        if backend == "faiss-ivf" and nprobe is not None:
            options["nprobe"] = nprobe
        index = build_index(store.load_chunks(folder, manifest), backend, manifest["score"], **options)
    return IndexedCorpus(folder, manifest, store.DocStore(folder), index, model)


def read_queries(path: str | Path) -> dict[str, str]:
    """Query id -> text from a query file (see the module doc), in file order.

    Raises:
        DataSchemaError: the file is missing, empty, or lacks an id / text column.
    """
    path = Path(path)
    for name in ("queries.jsonl", "queries.jsonl.gz"):  # a BEIR folder
        path = path / name if path.is_dir() and (path / name).is_file() else path
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataSchemaError("file not found", source=str(path))
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        queries = {f"q{i}": text for i, text in enumerate(lines, start=1)}
    else:
        from sbert_triplet.index.corpus import CorpusSpec, iter_corpus

        queries = dict(iter_corpus(CorpusSpec(str(path))))
    if not queries:
        raise DataSchemaError("no queries found", source=str(path))
    return queries


def format_hits(queries: dict[str, str], hits: list[list[dict[str, Any]]], width: int = 80) -> str:
    """A plain-text table per query: rank, score, document id and the start of its text."""
    lines = []
    for (qid, text), rows in zip(queries.items(), hits):
        lines.append(f"query {qid}: {text}")
        lines.append(f"{'rank':>4}  {'score':>8}  {'id':<16}  text")
        for hit in rows:
            snippet = " ".join(hit["text"].split())
            snippet = snippet if len(snippet) <= width else snippet[: width - 3] + "..."
            lines.append(f"{hit['rank']:>4}  {hit['score']:>8.4f}  {hit['id']:<16}  {snippet}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def hits_to_json(queries: dict[str, str], hits: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """JSON-ready hits per query; a ``-inf`` score (all-zero document) becomes ``null``."""
    import math

    def clean(hit: dict[str, Any]) -> dict[str, Any]:
        return dict(hit, score=hit["score"] if math.isfinite(hit["score"]) else None)

    return [{"query_id": q, "query": t, "hits": [clean(h) for h in rows]} for (q, t), rows in zip(queries.items(), hits)]
