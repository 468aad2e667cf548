"""Retrieval evaluation through the index path: encode, build an index, search, score.

The corpus is encoded with :func:`sbert_triplet.index.encode_texts` and searched with
:func:`sbert_triplet.index.build_index`, the same code ``sbert-triplet index`` and
``search`` run; the run is scored with trec_eval's conventions
(:mod:`sbert_triplet.evaluation.metrics`).

Tie rule: one ranking for every metric, trec_eval's (score descending, then document id
descending). The corpus rows are put in document-id-descending order before indexing
and the exact backend breaks ties by row ascending, so even the documents that make the
top-k cut among equal scores are trec_eval's, whatever order the corpus came in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sbert_triplet.data.types import RetrievalSet
from sbert_triplet.evaluation.metrics import check_ks, retrieval_metrics
from sbert_triplet.evaluation.sts import encode_unique


def run_from_search(
    query_ids: Sequence[str], doc_ids: Sequence[str], scores: Any, rows: Any
) -> dict[str, dict[str, float]]:
    """A trec-style run (query id -> {document id: score}) from ``search`` output.

    ``scores`` / ``rows`` are ``(Q, k)``; rows < 0 (no neighbour found) are dropped.
    """
    return {
        qid: {doc_ids[r]: s for r, s in zip(row_ids, row_scores) if r >= 0}
        for qid, row_ids, row_scores in zip(query_ids, rows.tolist(), scores.tolist())
    }


def evaluate_retrieval(
    model: Any,
    rset: RetrievalSet,
    ks: Iterable[int] = (10, 100),
    batch_size: int = 32,
    show_progress_bar: bool = False,
    backend: str = "exact",
    index_options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """nDCG@k, MRR@k, Recall@k, Precision@k and MAP@k of ``model`` on a retrieval set.

    Queries (each distinct text once) and corpus (``title + " " + text`` is the adapter's
    job) are encoded, the corpus is indexed with ``backend`` by cosine similarity, every
    query retrieves ``top_k = max(ks)`` documents, and the run is scored by
    :func:`~sbert_triplet.evaluation.metrics.retrieval_metrics` (trec_eval conventions,
    see the module doc for ties; a judged query whose text is missing from
    ``rset.queries`` scores 0).

    Args:
        model: anything with a SentenceTransformer-like ``encode``.
        rset: queries, corpus and graded qrels (grades are the gains of nDCG).
        ks: metric cutoffs, e.g. ``(10, 100)`` or ``(1, 5, 10, 20)``.
        batch_size, show_progress_bar: encoding batch size, tqdm bar over the corpus.
        backend: ``"exact"`` (default, the reference) or a FAISS backend of
            :func:`~sbert_triplet.index.build_index`; ``index_options`` go to it.

    Returns:
        Plain floats keyed ``"ndcg@10"``, ``"mrr@10"``, ``"recall@10"``, ``"recall@100"``,
        ``"precision@10"``, ``"map@100"``, ... (every metric at every k).

    Raises:
        ValueError: empty queries or corpus, a bad ``ks``, or no query with a relevant
            document. ConfigError: unknown backend.
    """
    from tqdm.auto import tqdm

    from sbert_triplet.index import build_index, encode_texts

    ks = check_ks(ks)
    if not rset.queries or not rset.corpus_ids:
        raise ValueError(
            f"retrieval set {rset.name!r} needs at least one query and one document; got "
            f"{len(rset.queries)} queries and {len(rset.corpus_ids)} documents"
        )
    query_ids = list(rset.queries)
    doc_ids = sorted(rset.corpus_ids, reverse=True)  # row order = trec_eval's tie order
    q_emb, q_rows = encode_unique(model, [rset.queries[q] for q in query_ids], batch_size=batch_size)
    q_emb = q_emb[q_rows]  # (Q, D)
    with tqdm(total=len(doc_ids), unit="doc", desc=f"encoding {rset.name}", disable=not show_progress_bar) as bar:
        c_emb = encode_texts(model, [rset.corpus[d] for d in doc_ids], batch_size, progress=bar)  # (N, D)
    index = build_index(c_emb, backend, score="cosine", **(index_options or {}))
    scores, rows = index.search(q_emb.float().cpu(), max(ks))  # (Q, k) each
    return retrieval_metrics(run_from_search(query_ids, doc_ids, scores, rows), rset.relevant, ks)


def read_qrels_file(path: str) -> dict[str, dict[str, int]]:
    """Query id -> {document id: grade} from a BEIR qrels TSV (``query-id corpus-id score``,
    header optional) or a TREC qrels file (``qid 0 docid grade``); all grades kept.

    Raises:
        DataSchemaError: the file is missing or a line has neither 3 nor 4 fields.
    """
    from pathlib import Path

    from sbert_triplet.data.files import open_text
    from sbert_triplet.errors import DataSchemaError

    if not Path(path).is_file():
        raise DataSchemaError("qrels file not found", source=str(path))
    qrels: dict[str, dict[str, int]] = {}
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or (lineno == 1 and not fields[-1].lstrip("-").isdigit()):
                continue  # blank line or header
            if len(fields) not in (3, 4) or not fields[-1].lstrip("-").isdigit():
                raise DataSchemaError(
                    f"line {lineno}: expected 'query-id corpus-id score' or 'qid 0 docid grade', got {line.strip()!r}",
                    source=str(path),
                )
            qrels.setdefault(fields[0], {})[fields[-2]] = int(fields[-1])
    return qrels


def evaluate_index(indexed: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                   ks: Iterable[int] = (10, 100), batch_size: int = 64) -> dict[str, float]:
    """The metrics of :func:`evaluate_retrieval` for an index folder opened with
    :func:`sbert_triplet.index.open_index` (with its model), on the judged ``queries``.

    Within the top ``max(ks)`` the ranking is trec_eval's; which of several documents tied
    exactly at the cut are retrieved follows the index's row order (corpus file order).

    Raises:
        ValueError: no query of ``qrels`` has a relevant document and a text in ``queries``.
    """
    from sbert_triplet.index.encode import encode_texts

    ks = check_ks(ks)
    query_ids = [q for q, rel in qrels.items() if q in queries and any(g > 0 for g in rel.values())]
    if not query_ids:
        raise ValueError("no query of the qrels has a relevant document and a text in the queries file")
    embeddings = encode_texts(indexed.model, [queries[q] for q in query_ids], batch_size)  # (Q, D)
    scores, rows = indexed.index.search(embeddings, max(ks))  # (Q, k) each
    hit_rows = sorted({r for r in rows.flatten().tolist() if r >= 0})
    id_of = dict(zip(hit_rows, (d["id"] for d in indexed.docs.get(hit_rows))))
    run = {q: {id_of[r]: s for r, s in zip(rr, ss) if r >= 0} for q, rr, ss in zip(query_ids, rows.tolist(), scores.tolist())}
    return retrieval_metrics(run, qrels, ks)
