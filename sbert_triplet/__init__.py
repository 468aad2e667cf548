"""sbert_triplet: fine-tune Sentence-BERT encoders for semantic search."""
__version__ = "0.1.0"
