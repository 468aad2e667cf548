"""What mining needs to know: queries, their known positives, and the corpus to search.

Two sources:

* a BEIR folder + qrels split: queries = those judged relevant (score > 0) to at least one
  document in the split (queries-file order), corpus = every document;
* a pairs / triplets file (anything :func:`sbert_triplet.data.load_triplets` reads):
  queries = the distinct anchors (first-seen order), positives of an anchor = every
  positive text paired with it, corpus = the distinct positive and negative texts
  (positives first, first-seen order; the document id is the row number as a string).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sbert_triplet.errors import DataSchemaError


@dataclass(frozen=True)
class MiningInput:
    """Queries with known positives and the corpus.

    Attributes:
        queries: ``Q`` query texts.
        positives: for each query, the corpus rows (indices into ``corpus``) of its known
            positives, non-empty, in judgement order.
        corpus: ``N`` document texts.
        corpus_ids: ``N`` document ids (``str``), unique.
    """

    queries: list[str]
    positives: list[list[int]]
    corpus: list[str]
    corpus_ids: list[str]

    def __post_init__(self) -> None:
        assert len(self.queries) == len(self.positives), "one positive list per query"
        assert len(self.corpus) == len(self.corpus_ids), "one id per document"


def from_beir(folder: str | Path, split: str = "train") -> MiningInput:
    """Mining input of a BEIR folder's qrels ``split`` (see the module docstring).

    Raises:
        DataSchemaError: missing files or split, malformed lines (from the BEIR loaders), a
            qrel naming an unknown query or document, or no judged query in the split.
    """
    from sbert_triplet.data.beir import load_corpus, load_qrels, load_queries

    corpus, queries, qrels = load_corpus(folder), load_queries(folder), load_qrels(folder, split)
    row_of = {doc_id: row for row, doc_id in enumerate(corpus)}
    texts, positives = [], []
    for query_id, text in queries.items():
        if query_id not in qrels:
            continue
        unknown = [doc for doc in qrels[query_id] if doc not in row_of]
        if unknown:
            raise DataSchemaError(f"qrels/{split}: query {query_id!r} names unknown document(s) {unknown[:3]}",
                                  source=str(folder))
        texts.append(text)
        positives.append([row_of[doc] for doc in qrels[query_id]])
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise DataSchemaError(f"qrels/{split} names unknown query id(s) {missing[:3]}", source=str(folder))
    if not texts:
        raise DataSchemaError(f"no query has a relevant document in qrels/{split}", source=str(folder))
    return MiningInput(texts, positives, list(corpus.values()), list(corpus))


def from_pairs(path: str | Path, columns: str | None = None) -> MiningInput:
    """Mining input of a pairs / triplets file (see the module docstring).

    Raises:
        DataSchemaError: as :func:`sbert_triplet.data.load_triplets`.
    """
    from sbert_triplet.data import load_triplets

    dataset, _ = load_triplets(path, columns=columns)
    negative_columns = [c for c in dataset.column_names if c.startswith("negative_")]
    row_of: dict[str, int] = {}
    for text in list(dataset["positive"]) + [t for c in negative_columns for t in dataset[c]]:
        row_of.setdefault(text, len(row_of))
    by_anchor: dict[str, list[int]] = {}
    for anchor, positive in zip(dataset["anchor"], dataset["positive"]):
        rows = by_anchor.setdefault(anchor, [])
        if row_of[positive] not in rows:
            rows.append(row_of[positive])
    corpus = list(row_of)
    return MiningInput(list(by_anchor), list(by_anchor.values()), corpus, [str(i) for i in range(len(corpus))])


def load_mining_input(path: str | Path, split: str = "train", columns: str | None = None) -> MiningInput:
    """A BEIR folder (``split`` = qrels split) or a pairs / triplets file (``columns`` mapping)."""
    from sbert_triplet.data.beir import is_beir_folder

    return from_beir(path, split) if is_beir_folder(path) else from_pairs(path, columns)
