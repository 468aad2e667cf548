"""Index SciFact's 5,183 abstracts with all-MiniLM-L6-v2; HNSW / IVF against exact search.

Run by hand, never in CI, with nothing else running (~4 min on 2 cores):

    .venv/bin/python bench/index_scifact.py

1. ``sbert-triplet index --corpus ../shared/data/scifact --backend faiss-hnsw`` in its own
   process (the command users run): documents/s and that process's peak RSS
   (``ru_maxrss`` of the child); the default settings (chunk 4,096, batch 64, float32,
   HNSW M 32, efConstruction 200, efSearch 128).
2. All 1,109 SciFact queries encoded once, then searched with ``exact`` (the reference),
   ``faiss-flat``, ``faiss-hnsw`` and ``faiss-ivf`` (default nlist = min(4 sqrt(N), N / 39) = 132, nprobe 16):
   Recall@10 of each against exact (overlap of the top-10 sets), one-query latency
   (median / p95 over the 1,109 queries, k = 10, query already encoded) and the
   test-split nDCG@10 / Recall@100 of each backend.

Writes ``bench/results/index_scifact.{json,md}``; the index goes to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SBERT_TRIPLET_DATA", HERE.parent.parent / "shared" / "data")) / "scifact"


def index_with_cli(output: Path) -> dict:
    cli = Path(sys.executable).with_name("sbert-triplet")
    cmd = [str(cli), "index", "--corpus", str(DATA), "--output", str(output), "--backend", "faiss-hnsw", "--no-progress"]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    report = json.loads(out.stdout)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["child_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    report["command"] = " ".join(["sbert-triplet", *cmd[1:]])
    return report


def compare_backends(output: Path) -> list[dict]:
    import numpy as np

    from sbert_triplet.data.beir import load_qrels, load_queries
    from sbert_triplet.evaluation.metrics import retrieval_metrics
    from sbert_triplet.evaluation.retrieval import run_from_search
    from sbert_triplet.index import encode_texts, open_index
    from sbert_triplet.models import load_model

    model = load_model(None)
    queries, qrels = load_queries(DATA), load_qrels(DATA, "test")
    q_ids = list(queries)
    q_emb = encode_texts(model, [queries[q] for q in q_ids], 64)  # (1109, 384)
    exact = open_index(output, model, backend="exact")
    doc_ids = [d["id"] for d in exact.docs.get(range(len(exact.docs)))]
    _, exact_rows = exact.index.search(q_emb, 10)
    results = []
    for backend in ("exact", "faiss-flat", "faiss-hnsw", "faiss-ivf"):
        index = open_index(output, model, backend=backend).index
        latency = []
        for q in q_emb:
            t0 = time.perf_counter()
            index.search(q[None], 10)
            latency.append(time.perf_counter() - t0)
        scores, rows = index.search(q_emb, 100)  # (1109, 100)
        top10 = rows[:, :10].tolist()
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_rows.tolist(), top10)]))
        metrics = retrieval_metrics(run_from_search(q_ids, doc_ids, scores, rows), qrels, (10, 100))
        results.append({"backend": backend, "params": getattr(index, "params", {}), "recall@10_vs_exact": round(recall, 4),
                        "query_ms_median": round(1000 * float(np.median(latency)), 3),
                        "query_ms_p95": round(1000 * float(np.percentile(latency, 95)), 3),
                        "test_ndcg@10": round(metrics["ndcg@10"], 4), "test_recall@100": round(metrics["recall@100"], 4)})
    return results


def markdown(result: dict) -> str:
    r = result["index"]
    lines = [f"`{r['command']}`: {r['num_docs']:,} documents, {r['docs_per_second']} documents/s "
             f"({r['encode_seconds']} s encoding, {r['build_seconds']} s HNSW build, {r['wall_s']} s wall), "
             f"peak RSS {r['child_peak_rss_mb']} MB", "",
             "| backend | Recall@10 vs exact | one query ms (median / p95) | test nDCG@10 | test Recall@100 |",
             "|---|---|---|---|---|"]
    for b in result["backends"]:
        lines.append(f"| {b['backend']} {b['params'] or ''} | {b['recall@10_vs_exact']} | {b['query_ms_median']} / "
                     f"{b['query_ms_p95']} | {b['test_ndcg@10']} | {b['test_recall@100']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="/tmp/scifact_index")
    args = parser.parse_args()
    output = Path(args.output)
    if output.exists():  # measure a full run, not a resume
        import shutil

        shutil.rmtree(output)
    result = {"index": index_with_cli(output), "backends": compare_backends(output)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "index_scifact.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "results" / "index_scifact.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
