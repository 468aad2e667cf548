"""Settings of ``sbert-triplet index``: a frozen dataclass validated on creation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sbert_triplet.errors import ConfigError

DTYPES = ("float32", "float16")


def _positive(name: str, value: object, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class IndexConfig:
    """How to encode a corpus to disk and which backend to build.

    Attributes:
        backend: ``exact`` | ``faiss-flat`` | ``faiss-hnsw`` | ``faiss-ivf``.
        dtype: ``float32`` or ``float16`` (half the disk; scores are computed in float32).
        chunk_size: documents per embedding file; the unit of resume and of memory.
        batch_size: documents per ``model.encode`` call.
        score: ``cosine`` | ``dot`` | None (None = the model's ``similarity_fn_name``).
        hnsw_m, ef_construction, ef_search: HNSW graph degree and beam widths.
        nlist, nprobe: IVF cells (None = about 4 sqrt(N)) and cells visited per query.
        show_progress_bar: a tqdm bar over documents (stderr).
    """

    backend: str = field(default="exact", metadata={"help": "exact | faiss-flat | faiss-hnsw | faiss-ivf"})
    dtype: str = field(default="float32", metadata={"help": "float32 | float16 on disk"})
    chunk_size: int = field(default=4096, metadata={"help": "documents per embedding file (unit of resume)"})
    batch_size: int = field(default=64, metadata={"help": "documents per encode call"})
    score: str | None = field(default=None, metadata={"help": "cosine | dot (default: the model's similarity)"})
    hnsw_m: int = field(default=32, metadata={"help": "HNSW graph degree M"})
    ef_construction: int = field(default=200, metadata={"help": "HNSW efConstruction"})
    ef_search: int = field(default=128, metadata={"help": "HNSW efSearch"})
    nlist: int | None = field(default=None, metadata={"help": "IVF cells (default ~4 sqrt(N))"})
    nprobe: int = field(default=16, metadata={"help": "IVF cells visited per query"})
    show_progress_bar: bool = field(default=True, metadata={"help": "progress bar over documents"})

    def __post_init__(self) -> None:
        from sbert_triplet.index.base import BACKENDS

        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.score not in (None, "cosine", "dot"):
            raise ConfigError(f"score must be cosine or dot, got {self.score!r}")
        for name in ("chunk_size", "batch_size", "hnsw_m", "ef_construction", "ef_search", "nprobe"):
            _positive(name, getattr(self, name))
        _positive("nlist", self.nlist, allow_none=True)

    def backend_options(self) -> dict[str, int]:
        """The FAISS options of the chosen backend (empty for ``exact``)."""
        if self.backend == "faiss-hnsw":
            return dict(hnsw_m=self.hnsw_m, ef_construction=self.ef_construction, ef_search=self.ef_search)
        if self.backend == "faiss-ivf":
            return dict(nlist=self.nlist, nprobe=self.nprobe)
        return {}

    def to_dict(self) -> dict:
        return asdict(self)
