"""sbert_triplet: fine-tune Sentence-BERT encoders for semantic search.

The public API, imported lazily so ``import sbert_triplet`` (and the CLI) start fast:

- losses: :class:`TripletLoss`, :class:`MultipleNegativesRankingLoss`
- data: :func:`load_training_data`, :func:`load_triplets`, :func:`load_retrieval_set`, :func:`load_sts`
- training: :func:`build_train_config`, :func:`train`
- evaluation: :func:`evaluate_sts`, :func:`evaluate_triplets`, :func:`evaluate_retrieval`
- similarity: :func:`cos_sim`
- model: :func:`load_model`
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "TripletLoss": "sbert_triplet.losses",
    "MultipleNegativesRankingLoss": "sbert_triplet.losses",
    "load_training_data": "sbert_triplet.data",
    "load_triplets": "sbert_triplet.data",
    "load_retrieval_set": "sbert_triplet.data",
    "load_sts": "sbert_triplet.data",
    "build_train_config": "sbert_triplet.config",
    "train": "sbert_triplet.training.loop",
    "evaluate_sts": "sbert_triplet.evaluation",
    "evaluate_triplets": "sbert_triplet.evaluation",
    "evaluate_retrieval": "sbert_triplet.evaluation",
    "cos_sim": "sbert_triplet.similarity",
    "load_model": "sbert_triplet.models",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sbert_triplet' has no attribute {name!r}")
