"""The ``sbert-triplet`` command line: parse -> config -> call the library; nothing else.

Heavy libraries (torch, transformers, sentence-transformers) are imported only inside
the commands, so ``sbert-triplet --help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import typer

from sbert_triplet.errors import SbertTripletError

app = typer.Typer(
    name="sbert-triplet",
    help="Fine-tune Sentence-BERT encoders for semantic search (triplet / MNR losses), evaluate them, save them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_MODEL_HELP = "local sentence-transformers folder or hub id (default: the packaged all-MiniLM-L6-v2)"


def _set_offline_defaults() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@app.command()
def train(
    train: Optional[str] = typer.Option(None, "--train", help="triplet/pair file (jsonl[.gz], csv, tsv, parquet), HF dataset, or BEIR folder"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", help="where the model, metrics.json and train_log.jsonl go"),
    model: Optional[str] = typer.Option(None, "--model", help=_MODEL_HELP),
    train_split: Optional[str] = typer.Option(None, "--train-split", help="BEIR qrels split or HF dataset split (BEIR default: train)"),
    columns: Optional[str] = typer.Option(None, "--columns", help="column mapping, e.g. anchor=question,positive=answer,negative=neg"),
    drop_invalid: Optional[bool] = typer.Option(None, "--drop-invalid/--no-drop-invalid", help="drop invalid rows and count them, instead of failing"),
    loss: Optional[str] = typer.Option(None, "--loss", help="triplet | mnr (multiple negatives ranking, in-batch negatives)"),
    margin: Optional[float] = typer.Option(None, "--margin", help="triplet margin in distance units [0.5]"),
    distance: Optional[str] = typer.Option(None, "--distance", help="triplet distance: euclidean | cosine [euclidean]"),
    scale: Optional[float] = typer.Option(None, "--scale", help="MNR scale = 1/temperature on cosine similarities [20]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="rows per step [32]"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="passes over the data [1]"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after N optimizer steps (overrides --epochs)"),
    lr: Optional[float] = typer.Option(None, "--lr", help="peak learning rate [2e-5]"),
    warmup_ratio: Optional[float] = typer.Option(None, "--warmup-ratio", help="fraction of steps of linear warm-up [0.1]"),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="truncate texts to N tokens"),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed [42]"),
    eval_sts: Optional[str] = typer.Option(None, "--eval-sts", help="STS file for Spearman (STS-B csv, SICK txt, jsonl)"),
    eval_triplets: Optional[str] = typer.Option(None, "--eval-triplets", help="triplet file for triplet accuracy"),
    eval_ir: Optional[str] = typer.Option(None, "--eval-ir", help="BEIR folder for nDCG@10, MRR@10, Recall@10/100"),
    eval_split: Optional[str] = typer.Option(None, "--eval-split", help="qrels split for --eval-ir [test]"),
    eval_steps: Optional[int] = typer.Option(None, "--eval-steps", help="also evaluate every N steps"),
    log_steps: Optional[int] = typer.Option(None, "--log-steps", help="log the loss every N steps [10]"),
    config: Optional[str] = typer.Option(None, "--config", help="YAML file with any of these options (flags override it)"),
) -> None:
    """Fine-tune a sentence encoder, evaluating before and after; save it in sentence-transformers format."""
    flags = {k: v for k, v in locals().items() if k != "config"}
    from sbert_triplet.config import build_train_config, load_yaml

    _set_offline_defaults()
    values: dict[str, Any] = load_yaml(config) if config else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    cfg = build_train_config(values)

    from sbert_triplet.training.loop import train as run_training

    metrics = run_training(cfg)
    typer.echo(json.dumps({"output_dir": cfg.output_dir, "before": metrics["before"], "after": metrics["after"],
                           "train": metrics["train"]}, indent=2))


@app.command()
def evaluate(
    model: Optional[str] = typer.Option(None, "--model", help=_MODEL_HELP),
    sts: Optional[str] = typer.Option(None, "--sts", help="STS file: Spearman/Pearson of cosine similarity vs gold score"),
    triplets: Optional[str] = typer.Option(None, "--triplets", help="triplet file: fraction with d(a,p) < d(a,n)"),
    ir: Optional[str] = typer.Option(None, "--ir", help="BEIR folder: nDCG@10, MRR@10, Recall@10, Recall@100"),
    split: str = typer.Option("test", "--split", help="qrels split for --ir"),
    batch_size: int = typer.Option(64, "--batch-size", help="encoding batch size"),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="truncate texts to N tokens"),
) -> None:
    """Evaluate a model and print the metrics as JSON."""
    if not (sts or triplets or ir):
        raise typer.BadParameter("give at least one of --sts, --triplets, --ir")
    _set_offline_defaults()
    from sbert_triplet.evaluation.build import build_evaluators
    from sbert_triplet.models import load_model

    evaluators = build_evaluators(sts=sts, triplets=triplets, ir=ir, ir_split=split, batch_size=batch_size)
    encoder = load_model(model, max_seq_length=max_seq_length)
    encoder.eval()
    results = {ev.name: ev(encoder) for ev in evaluators}
    typer.echo(json.dumps(results, indent=2))


def main() -> None:
    """Console-script entry point: user errors print one clear line and exit with 2."""
    try:
        app()
    except SbertTripletError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
