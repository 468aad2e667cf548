"""Data adapters: read tables (incl. the FlagEmbedding list layout), NLI
pairs, BEIR folders and STS files into the canonical schema.

Training data is a ``datasets.Dataset`` with columns ``anchor, positive, negative_1..k``
(see :mod:`sbert_triplet.data.schema`); evaluation sets are :class:`ScoredPairs` and
:class:`RetrievalSet`. Heavy libraries (``datasets``, ``pyarrow``) load lazily.
"""

from sbert_triplet.data.beir import beir_training_pairs, is_beir_folder, load_retrieval_set
from sbert_triplet.data.files import load_table
from sbert_triplet.data.inspect import inspect_data
from sbert_triplet.data.nli import load_nli_triplets
from sbert_triplet.data.schema import parse_column_mapping, resolve_columns
from sbert_triplet.data.validation import validate_rows, validate_texts
from sbert_triplet.data.sts import load_sts
from sbert_triplet.data.triplets import load_training_data, load_triplets
from sbert_triplet.data.types import RetrievalSet, ScoredPairs

__all__ = [
    "RetrievalSet",
    "ScoredPairs",
    "beir_training_pairs",
    "inspect_data",
    "is_beir_folder",
    "load_retrieval_set",
    "load_sts",
    "load_nli_triplets",
    "load_table",
    "load_training_data",
    "load_triplets",
    "parse_column_mapping",
    "resolve_columns",
    "validate_rows",
    "validate_texts",
]
