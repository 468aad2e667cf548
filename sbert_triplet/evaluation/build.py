"""Build evaluators from an :class:`~sbert_triplet.config.EvalConfig` (or plain paths)."""

from __future__ import annotations

from pathlib import Path

from sbert_triplet.config import EvalConfig


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt"):
        name = name.removesuffix(suffix)
    return name


def build_evaluators(
    cfg: EvalConfig | None = None,
    *,
    sts: str | None = None,
    triplets: str | None = None,
    ir: str | None = None,
    ir_split: str = "test",
    batch_size: int = 64,
) -> list:
    """Evaluators for an STS file, a triplet file and/or a BEIR folder.

    Either pass an ``EvalConfig`` or the paths directly. Returns a list of callables
    ``evaluator(model) -> {metric: value}`` with a ``.name``.

    Raises:
        DataSchemaError: a file is missing or malformed.
    """
    from sbert_triplet.data import load_retrieval_set, load_sts, load_triplets
    from sbert_triplet.evaluation import RetrievalEvaluator, STSEvaluator, TripletEvaluator

    if cfg is not None:
        sts, triplets, ir = cfg.eval_sts, cfg.eval_triplets, cfg.eval_ir
        ir_split, batch_size = cfg.eval_split, cfg.eval_batch_size
    evaluators = []
    if sts:
        pairs = load_sts(sts)
        evaluators.append(STSEvaluator(pairs, name=pairs.name, batch_size=batch_size))
    if triplets:
        dataset, _ = load_triplets(triplets)
        evaluators.append(TripletEvaluator(dataset, name=_stem(triplets), batch_size=batch_size))
    if ir:
        rset = load_retrieval_set(ir, split=ir_split)
        # encoding a corpus takes minutes: show progress (tqdm writes to stderr)
        evaluators.append(RetrievalEvaluator(rset, name=rset.name, batch_size=batch_size, show_progress_bar=True))
    return evaluators
