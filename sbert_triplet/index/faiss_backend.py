"""FAISS backends (``faiss-cpu``): flat inner product, HNSW and IVF, one class.

For ``score="cosine"`` the vectors are L2-normalised before they are added, so the inner
product FAISS returns is the cosine similarity in [-1, 1]; for ``"dot"`` they are added
as they are. All-zero corpus vectors are never added (they have no direction): they
rank last with score ``-inf``, as in the exact backend, filling the places FAISS leaves
empty. Within a result list, equal scores are ordered by row ascending.

Sources: Johnson, Douze & Jégou (2019), "Billion-scale similarity search with GPUs"
(FAISS); Malkov & Yashunin (2018) for HNSW; Jégou, Douze & Schmid (2011) for IVF.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbert_triplet.errors import ConfigError
from sbert_triplet.index.exact import check_score, check_top_k

KINDS = ("flat", "hnsw", "ivf")


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ConfigError("the faiss backends need faiss-cpu: pip install faiss-cpu, or use --backend exact") from None
    return faiss


def default_nlist(n: int) -> int:
    """IVF cells: about 4 sqrt(N), with at least 39 training vectors per cell (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


class FaissIndex:
    """A FAISS index over ``N`` corpus rows, searched with :meth:`search`.

    Build with :meth:`build`; save / load with :meth:`save` / :meth:`load`.
    ``hnsw_m`` (graph degree, default 32), ``ef_construction`` (200) and ``ef_search``
    (128) tune HNSW; ``nlist`` (IVF cells, default :func:`default_nlist`) and ``nprobe``
    (cells visited per query, default 16) tune IVF. Larger ``ef_search`` / ``nprobe``:
    better recall, slower queries.
    """

    def __init__(self, index: Any, kind: str, score: str, n: int, dim: int, zero_rows: np.ndarray, params: dict) -> None:
        self.index, self.kind, self.score, self.dim = index, kind, score, dim
        self._n = n
        self.zero_rows = np.asarray(zero_rows, dtype=np.int64)
        self.params = dict(params)
        self.backend = f"faiss-{kind}"
        self.set_search_params(ef_search=params.get("ef_search"), nprobe=params.get("nprobe"))

    def __len__(self) -> int:
        return self._n

    @classmethod
    def build(cls, embeddings: Any, kind: str = "flat", score: str = "cosine", hnsw_m: int = 32,
              ef_construction: int = 200, ef_search: int = 128, nlist: int | None = None,
              nprobe: int = 16) -> FaissIndex:
        """Index ``embeddings`` (``(N, D)`` or a sequence of ``(C_i, D)`` chunks), one chunk at a time.

        Raises:
            ConfigError: unknown kind, a non-positive option, or faiss-cpu missing.
            ValueError: bad embeddings or score.
        """
        from sbert_triplet.index.base import _chunk_dims, as_chunks

        check_score(score)
        if kind not in KINDS:
            raise ConfigError(f"unknown FAISS index kind {kind!r}; choose one of {list(KINDS)}")
        for name, value in dict(hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search,
                                nprobe=nprobe, nlist=1 if nlist is None else nlist).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FAISS option {name} must be a positive integer, got {value!r}")
        faiss = _faiss()
        chunks = as_chunks(embeddings)
        n, dim = _chunk_dims(chunks)
        params: dict[str, int] = {}
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = ef_construction
            index = faiss.IndexIDMap2(inner)
            params.update(hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search)
        else:
            cells = default_nlist(n) if nlist is None else nlist
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
            index.train(_training_sample(chunks, score, cells))
            params.update(nlist=cells, nprobe=nprobe)
        zero_rows = _add_chunks(index, chunks, score)
        return cls(index, kind, score, n, dim, zero_rows, params)

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change HNSW ``ef_search`` / IVF ``nprobe`` for later searches (None keeps the value)."""
        inner = _faiss().downcast_index(self.index.index) if hasattr(self.index, "id_map") else self.index
        if ef_search is not None and hasattr(inner, "hnsw"):
            inner.hnsw.efSearch = int(ef_search)
            self.params["ef_search"] = int(ef_search)
        if nprobe is not None and hasattr(inner, "nprobe"):
            inner.nprobe = int(nprobe)
            self.params["nprobe"] = int(nprobe)

    def search(self, queries: Any, k: int) -> tuple[Tensor, Tensor]:
        """``scores (Q, min(k, N))`` float32, ``rows (Q, min(k, N))`` int64, best first."""
        from sbert_triplet.index.base import check_queries

        check_top_k(k)
        q = np.array(check_queries(queries, self.dim).float().cpu().numpy(), dtype=np.float32, order="C", copy=True)  # (Q, D)
        if self.score == "cosine":
            _faiss().normalize_L2(q)  # in place; a zero query stays zero
        k_out = min(k, self._n)
        scores = np.full((q.shape[0], k_out), -np.inf, dtype=np.float32)  # (Q, k')
        rows = np.full((q.shape[0], k_out), -1, dtype=np.int64)  # (Q, k')
        k_faiss = min(k_out, self.index.ntotal)
        if k_faiss > 0:
            found_scores, found_rows = self.index.search(q, k_faiss)  # (Q, k_faiss) each
            scores[:, :k_faiss], rows[:, :k_faiss] = found_scores, found_rows
            scores[rows < 0] = -np.inf  # FAISS pads missing neighbours with -1 and -FLT_MAX
        _fill_zero_rows(scores, rows, self.zero_rows)
        order = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -scores), axis=-1)  # (Q, k')
        return (torch.from_numpy(np.take_along_axis(scores, order, 1)),
                torch.from_numpy(np.take_along_axis(rows, order, 1)))

    def save(self, path: str | Path) -> None:
        """Write the FAISS index to ``path`` and its metadata to ``path + ".json"``."""
        _faiss().write_index(self.index, str(path))
        meta = dict(kind=self.kind, score=self.score, n=self._n, dim=self.dim,
                    zero_rows=self.zero_rows.tolist(), params=self.params)
        Path(f"{path}.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path) -> FaissIndex:
        """Read an index written by :meth:`save`."""
        meta = json.loads(Path(f"{path}.json").read_text())
        index = _faiss().read_index(str(path))
        return cls(index, meta["kind"], meta["score"], meta["n"], meta["dim"], np.asarray(meta["zero_rows"]), meta["params"])


def _prepared(chunk: Any, score: str) -> tuple[np.ndarray, np.ndarray]:
    """A chunk as contiguous float32 (normalised for cosine) and its non-zero row mask."""
    x = np.array(chunk, dtype=np.float32, copy=True)  # (C, D)
    nonzero = np.any(x != 0, axis=1)  # (C,)
    if score == "cosine":
        _faiss().normalize_L2(x)
    return x, nonzero


def _add_chunks(index: Any, chunks: list[Any], score: str) -> np.ndarray:
    zero_rows, start = [], 0
    for chunk in chunks:
        x, nonzero = _prepared(chunk, score)  # (C, D), (C,)
        rows = np.arange(start, start + x.shape[0], dtype=np.int64)  # (C,)
        if nonzero.any():
            index.add_with_ids(np.ascontiguousarray(x[nonzero]), rows[nonzero])
        zero_rows.extend(rows[~nonzero].tolist())
        start += x.shape[0]
    return np.asarray(zero_rows, dtype=np.int64)


def _training_sample(chunks: list[Any], score: str, nlist: int, per_cell: int = 50, seed: int = 0) -> np.ndarray:
    """Up to ``per_cell * nlist`` non-zero rows drawn evenly at random from all chunks."""
    n = sum(int(c.shape[0]) for c in chunks)
    rng = np.random.default_rng(seed)
    wanted = np.sort(rng.choice(n, size=min(n, per_cell * nlist), replace=False))
    parts, start = [], 0
    for chunk in chunks:
        local = wanted[(wanted >= start) & (wanted < start + chunk.shape[0])] - start
        x, nonzero = _prepared(np.asarray(chunk)[local], score)  # (c, D), (c,)
        parts.append(x[nonzero])
        start += chunk.shape[0]
    sample = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)  # (S, D)
    if sample.shape[0] < nlist:
        raise ConfigError(f"faiss-ivf needs at least nlist={nlist} non-zero vectors to train; got {sample.shape[0]}. "
                          "Lower --nlist or use faiss-flat / exact")
    return np.ascontiguousarray(sample)


def _fill_zero_rows(scores: np.ndarray, rows: np.ndarray, zero_rows: np.ndarray) -> None:
    """Put zero rows (score -inf) into the empty places (row -1) of each result list, in place."""
    if zero_rows.size == 0:
        return
    for q in range(rows.shape[0]):
        empty = np.flatnonzero(rows[q] < 0)
        take = min(empty.size, zero_rows.size)
        rows[q, empty[:take]] = zero_rows[:take]
