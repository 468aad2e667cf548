"""Positive-aware hard-negative mining (Moreira et al. 2024, NV-Retriever, arXiv:2407.15831).

Small steps: :func:`embed` -> search (:func:`dense_candidates`, :func:`bm25_candidates`)
-> :mod:`filters` -> :func:`sample_negatives` -> :func:`triplet_rows` / report.
:func:`run_mining` does all of them for a BEIR folder or a pairs file.
"""

from sbert_triplet.mining.candidates import bm25_candidates, dense_candidates, dense_scores, embed
from sbert_triplet.mining.config import MiningConfig
from sbert_triplet.mining.inputs import MiningInput, from_beir, from_pairs, load_mining_input
from sbert_triplet.mining.pipeline import MiningResult, QueryCandidates, mine_hard_negatives, select_negatives
from sbert_triplet.mining.run import run_mining
from sbert_triplet.mining.sample import sample_negatives
from sbert_triplet.mining.write import triplet_rows, write_jsonl

__all__ = [
    "MiningConfig",
    "MiningInput",
    "MiningResult",
    "QueryCandidates",
    "bm25_candidates",
    "dense_candidates",
    "dense_scores",
    "embed",
    "from_beir",
    "from_pairs",
    "load_mining_input",
    "mine_hard_negatives",
    "run_mining",
    "sample_negatives",
    "select_negatives",
    "triplet_rows",
    "write_jsonl",
]
