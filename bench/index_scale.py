"""Index scale: FAISS on 1,000,000 random 384-d vectors, and flat memory of encode-to-disk.

Run by hand, never in CI, with nothing else running (2 cores here; FAISS uses every
thread OpenMP gives it):

    .venv/bin/python bench/index_scale.py                 # all parts, ~10 min on 2 cores
    .venv/bin/python bench/index_scale.py --part faiss --n 1000000
    .venv/bin/python bench/index_scale.py --part encode

Every measurement runs in its own process, so its peak RSS (``ru_maxrss``) is its own.

- ``faiss``: ``--n`` random standard-normal 384-d float32 vectors (seed 0), L2-normalised
  (cosine), indexed with ``faiss-flat``, ``faiss-ivf`` (nlist 1024, nprobe 16) and
  ``faiss-hnsw`` (M 16, efConstruction 40, efSearch 64; a small graph so it builds in
  minutes on 2 cores). Reported: build seconds, peak RSS, latency of one query
  (median of 200 single-query searches, k = 10), throughput of a batch of 1,000 queries,
  and Recall@10 against flat (exact) on those 1,000 queries. Random vectors are the
  hardest case for approximate indexes (no cluster structure); real embeddings do better.
- ``encode``: ``encode_to_disk`` of 10,000 and of 100,000 short synthetic texts
  ("the red cat plays 1234", 6 tokens) with the tiny random BERT of ``tests/conftest.py``
  (hidden 32, 2 layers), chunk 4,096, batch 256, float32, exact backend. Reported: peak
  RSS and documents/s; the two peaks should be about equal (memory is one chunk).

Writes ``bench/results/index_scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DIM = 384
BACKENDS = {
    "faiss-flat": {},
    "faiss-ivf": {"nlist": 1024, "nprobe": 16},
    "faiss-hnsw": {"hnsw_m": 16, "ef_construction": 40, "ef_search": 64},
}


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _vectors(n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM), dtype=np.float32)  # (n, 384)


def faiss_one(backend: str, n: int) -> dict:
    """Build ``backend`` over ``n`` random vectors in this process; time it and search it."""
    import numpy as np

    from sbert_triplet.index import build_index

    corpus, queries = _vectors(n, 0), _vectors(1000, 1)
    base_mb = _peak_mb()
    start = time.perf_counter()
    index = build_index([corpus[i : i + 100_000] for i in range(0, n, 100_000)], backend, "cosine", **BACKENDS[backend])
    build_s = time.perf_counter() - start
    index.search(queries[:1], 10)  # warm-up
    single = []
    for q in queries[:200]:
        t0 = time.perf_counter()
        index.search(q[None], 10)
        single.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    _, rows = index.search(queries, 10)  # (1000, 10)
    batch_s = time.perf_counter() - t0
    np.save(Path(tempfile.gettempdir()) / f"bench_index_rows_{backend}_{n}.npy", rows.numpy())
    return {"backend": backend, "n": n, "dim": DIM, "options": BACKENDS[backend], "build_s": round(build_s, 1),
            "single_query_ms_median": round(1000 * float(np.median(single)), 3),
            "single_query_ms_p95": round(1000 * float(np.percentile(single, 95)), 3),
            "batch_1000_queries_s": round(batch_s, 3), "peak_rss_mb": _peak_mb(), "rss_before_index_mb": base_mb}


def recall_vs_flat(results: list[dict], n: int) -> None:
    import numpy as np

    flat = np.load(Path(tempfile.gettempdir()) / f"bench_index_rows_faiss-flat_{n}.npy")
    for r in results:
        rows = np.load(Path(tempfile.gettempdir()) / f"bench_index_rows_{r['backend']}_{n}.npy")
        r["recall@10_vs_flat"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(flat, rows)])), 4)


def encode_one(n: int) -> dict:
    """``encode_to_disk`` of ``n`` short texts with the tiny BERT, in this process."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import build_tiny_model_dir
    from sentence_transformers import SentenceTransformer

    from sbert_triplet.index import CorpusSpec, IndexConfig, encode_to_disk

    work = Path(tempfile.mkdtemp(prefix="bench_encode_"))
    model = SentenceTransformer(str(build_tiny_model_dir(work / "model")), device="cpu")
    adjectives, nouns = ["red", "big", "old", "happy", "fast"], ["cat", "dog", "man", "house", "car"]
    with open(work / "corpus.jsonl", "w") as handle:
        for i in range(n):
            text = f"the {adjectives[i % 5]} {nouns[(i // 5) % 5]} plays {i}"
            handle.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    base_mb = _peak_mb()
    cfg = IndexConfig(chunk_size=4096, batch_size=256, show_progress_bar=False)
    report = encode_to_disk(model, CorpusSpec(str(work / "corpus.jsonl")), work / "index", cfg)
    return {"texts": n, "docs_per_second": report["docs_per_second"], "encode_seconds": report["encode_seconds"],
            "peak_rss_mb": _peak_mb(), "rss_before_encode_mb": base_mb,
            "disk_mb": round(sum(p.stat().st_size for p in (work / "index").rglob("*") if p.is_file()) / 2**20, 1)}


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    lines = ["| backend | n | build s | one query ms (median / p95) | 1,000 queries s | Recall@10 vs flat | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for r in result.get("faiss", []):
        lines.append(f"| {r['backend']} {r['options'] or ''} | {r['n']:,} | {r['build_s']} | {r['single_query_ms_median']} / "
                     f"{r['single_query_ms_p95']} | {r['batch_1000_queries_s']} | {r.get('recall@10_vs_flat')} | {r['peak_rss_mb']} |")
    lines += ["", "| texts encoded to disk (tiny BERT) | docs/s | peak RSS MB | RSS before encoding MB | disk MB |", "|---|---|---|---|---|"]
    for r in result.get("encode", []):
        lines.append(f"| {r['texts']:,} | {r['docs_per_second']} | {r['peak_rss_mb']} | {r['rss_before_encode_mb']} | {r['disk_mb']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "faiss", "encode"], default="all")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, value = args.child[0], args.child[1]
        out = faiss_one(value, int(args.child[2])) if kind == "faiss" else encode_one(int(value))
        print(json.dumps(out))
        return
    result: dict = {}
    if args.part in ("all", "faiss"):
        result["faiss"] = [child(["faiss", backend, str(args.n)]) for backend in BACKENDS]
        recall_vs_flat(result["faiss"], args.n)
    if args.part in ("all", "encode"):
        result["encode"] = [child(["encode", str(n)]) for n in (10_000, 100_000)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "index_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "index_scale.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
