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
    columns: Optional[str] = typer.Option(None, "--columns", help="column mapping, e.g. anchor=question,positive=answer,negative=neg; label losses: text=<col>,label=<col>; ladder: sentence1=..,sentence2=..,score=.."),
    drop_invalid: Optional[bool] = typer.Option(None, "--drop-invalid/--no-drop-invalid", help="drop invalid rows and count them, instead of failing"),
    mine_negatives: Optional[int] = typer.Option(None, "--mine-negatives", help="first mine K hard negatives per query with the base model (BEIR folder or pairs file; files go to OUTPUT_DIR/mining/)"),
    mine_candidates: Optional[str] = typer.Option(None, "--mine-candidates", help="--mine-negatives: dense | bm25 | both [dense]"),
    mine_search: Optional[str] = typer.Option(None, "--mine-search", help="--mine-negatives: exact | faiss-flat | faiss-hnsw | faiss-ivf [exact]"),
    mine_range_min: Optional[int] = typer.Option(None, "--mine-range-min", help="--mine-negatives: first kept rank, 0-based [0]"),
    mine_range_max: Optional[int] = typer.Option(None, "--mine-range-max", help="--mine-negatives: ranks < this are kept [50]"),
    mine_max_score_ratio: Optional[float] = typer.Option(None, "--mine-max-score-ratio", help="--mine-negatives: drop candidates with cosine > ratio x positive cosine [0.95]"),
    mine_margin: Optional[float] = typer.Option(None, "--mine-margin", help="--mine-negatives: instead drop candidates with cosine > positive cosine - margin"),
    mine_no_filter: Optional[bool] = typer.Option(None, "--mine-no-filter/--mine-filter", help="--mine-negatives: no positive-aware false-negative filter"),
    mine_sampling: Optional[str] = typer.Option(None, "--mine-sampling", help="--mine-negatives: top | random [top]"),
    loss: Optional[str] = typer.Option(None, "--loss", help="triplet | batch-all | batch-hard | batch-semi-hard | batch-hard-soft-margin (text, label data) | mnr | mnr-symmetric (in-batch negatives) | ladder (scored pairs) (default: mnr)"),
    margin: Optional[float] = typer.Option(None, "--margin", help="margin in units of --distance (triplet default: 0.5); ladder: first-step margin (default: 0.2)"),
    distance: Optional[str] = typer.Option(None, "--distance", help="triplet / batch losses: euclidean | squared_euclidean | cosine (1 - cos) | dot (a similarity) (default: euclidean)"),
    soft_margin: Optional[bool] = typer.Option(None, "--soft-margin/--no-soft-margin", help="triplet: log(1 + exp(gap)) instead of the hinge"),
    swap: Optional[bool] = typer.Option(None, "--swap/--no-swap", help="triplet: distance swap, the harder of d(a, n) and d(p, n)"),
    scale: Optional[float] = typer.Option(None, "--scale", help="MNR scale = 1/temperature on cosine similarities [20]"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="MNR temperature = 1/scale [0.05]; give --scale or --temperature"),
    mask_false_negatives: Optional[bool] = typer.Option(None, "--mask-false-negatives/--no-mask-false-negatives", help="MNR: drop in-batch candidates whose text is a labelled positive of the row (default: on for MNR losses)"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="random | no-duplicates | pk (default: no-duplicates for MNR, pk for label losses, else random)"),
    samples_per_label: Optional[int] = typer.Option(None, "--samples-per-label", help="pk sampler: K rows per label in a batch [2]"),
    ladder_levels: Optional[int] = typer.Option(None, "--ladder-levels", help="ladder: L levels, level = round(L * (score - min) / (max - min)) [2]"),
    mini_batch_size: Optional[int] = typer.Option(None, "--mini-batch-size", help="gradient cache: encode M rows at a time when M < --batch-size (same loss and gradients, less memory)"),
    gradient_accumulation_steps: Optional[int] = typer.Option(None, "--gradient-accumulation-steps", help="optimizer step every N batches [1]; adds no in-batch negatives (use --mini-batch-size)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="rows per step [32]"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="passes over the data [1]"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after N optimizer steps (overrides --epochs)"),
    lr: Optional[float] = typer.Option(None, "--lr", help="peak learning rate [2e-5]"),
    warmup_ratio: Optional[float] = typer.Option(None, "--warmup-ratio", help="fraction of steps of linear warm-up [0.1]"),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="truncate texts to N tokens"),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast"),
    length_buckets: Optional[bool] = typer.Option(None, "--length-buckets/--no-length-buckets", help="encode each batch's texts sorted by length in a few chunks: same loss, less padding [on]"),
    bucket_overhead_tokens: Optional[int] = typer.Option(None, "--bucket-overhead-tokens", help="cost of one more length chunk, in tokens [CPU 32, GPU 4096]"),
    packed_forward: Optional[bool] = typer.Option(None, "--packed-forward/--no-packed-forward", help="CPU, BERT encoders: run embeddings, projections and feed-forward on the batch's real tokens only, attention per length chunk: same loss, no padding [on]"),
    fast_dropout: Optional[bool] = typer.Option(None, "--fast-dropout/--no-fast-dropout", help="CPU: draw dropout masks with a parallel generator (same Bernoulli(1-p) masks, another random stream) and run attention with dropout in cache-sized blocks for long texts [on]"),
    fp16: Optional[bool] = typer.Option(None, "--fp16/--no-fp16", help="fp16 autocast with a gradient scaler (GPU only; on CPU use --bf16)"),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", help="DataLoader worker processes that tokenise batches [0]; same batches as without"),
    gather_across_devices: Optional[bool] = typer.Option(None, "--gather-across-devices/--no-gather-across-devices", help="several processes: every process's rows are in-batch negatives for all (gradient-preserving all-gather)"),
    save_steps: Optional[int] = typer.Option(None, "--save-steps", help="checkpoint every N steps in OUTPUT/checkpoints (crash-safe: temp folder, then rename)"),
    save_total_limit: Optional[int] = typer.Option(None, "--save-total-limit", help="keep only the N newest checkpoints"),
    resume_from_checkpoint: Optional[str] = typer.Option(None, "--resume-from-checkpoint", help="DIR or 'latest': continue exactly where that checkpoint stopped (same batches, LRs, RNG)"),
    max_nonfinite_steps: Optional[int] = typer.Option(None, "--max-nonfinite-steps", help="stop after N steps in a row with a NaN/inf loss or gradient (each is skipped) [5]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed [42]"),
    eval_sts: Optional[str] = typer.Option(None, "--eval-sts", help="STS file for Spearman (STS-B csv, SICK txt, jsonl)"),
    eval_triplets: Optional[str] = typer.Option(None, "--eval-triplets", help="triplet file for triplet accuracy"),
    eval_ir: Optional[str] = typer.Option(None, "--eval-ir", help="BEIR folder for nDCG@10, MRR@10, Recall@10/100"),
    eval_split: Optional[str] = typer.Option(None, "--eval-split", help="qrels split for --eval-ir [test]"),
    eval_before: Optional[bool] = typer.Option(None, "--eval-before/--no-eval-before", help="evaluate the base model before training too [on]"),
    eval_steps: Optional[int] = typer.Option(None, "--eval-steps", help="also evaluate every N steps"),
    log_steps: Optional[int] = typer.Option(None, "--log-steps", help="log the loss every N steps [10]"),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", help="push the saved model, card and metrics to this Hub repo USER/NAME at the end (token: HF_TOKEN or `hf auth login`)"),
    hub_private: Optional[bool] = typer.Option(None, "--hub-private/--no-hub-private", help="with --push-to-hub: create the repo as private"),
    config: Optional[str] = typer.Option(None, "--config", help="YAML file with any of these options (flags override it)"),
) -> None:
    """Fine-tune a sentence encoder, evaluating before and after; save it in sentence-transformers format."""
    flags = {k: v for k, v in locals().items() if k != "config"}
    from sbert_triplet.config import build_train_config, load_yaml

    _set_offline_defaults()
    values: dict[str, Any] = load_yaml(config) if config else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    cfg = build_train_config(values)
    if cfg.push_to_hub:  # no token: fail now, not after training
        from sbert_triplet.hub.push import require_token

        require_token()

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


@app.command()
def mine(
    data: str = typer.Option(..., "--data", help="BEIR folder (queries, corpus, qrels) or pairs/triplets file (anchor, positive[, negative..])"),
    output: str = typer.Option(..., "--output", help="triplet JSONL to write (anchor, positive, negative_1..K); <stem>.report.json and <stem>.scores.png go next to it"),
    model: Optional[str] = typer.Option(None, "--model", help=_MODEL_HELP),
    split: str = typer.Option("train", "--split", help="qrels split of a BEIR folder"),
    columns: Optional[str] = typer.Option(None, "--columns", help="pairs file column mapping, e.g. anchor=question,positive=answer"),
    candidates: str = typer.Option("dense", "--candidates", help="dense | bm25 | both (dense order, then BM25-only candidates)"),
    search: str = typer.Option("exact", "--search", help="dense candidate search: exact | faiss-flat | faiss-hnsw | faiss-ivf (approximate, for large corpora)"),
    range_min: int = typer.Option(0, "--range-min", help="first kept rank, 0-based, counted after removing positives"),
    range_max: int = typer.Option(50, "--range-max", help="ranks < this are kept (per retriever)"),
    num_negatives: int = typer.Option(1, "--num-negatives", help="K negatives per query; queries with fewer are reported and their rows left out"),
    max_score_ratio: Optional[float] = typer.Option(None, "--max-score-ratio", help="drop candidates with cosine > ratio x min positive cosine [0.95 unless --margin]"),
    margin: Optional[float] = typer.Option(None, "--margin", help="instead: drop candidates with cosine > min positive cosine - margin"),
    no_filter: bool = typer.Option(False, "--no-false-negative-filter", help="keep every candidate in the window, however close to the positive (no positive-aware filter)"),
    sampling: str = typer.Option("top", "--sampling", help="top | random"),
    seed: int = typer.Option(42, "--seed", help="seed of --sampling random"),
    batch_size: int = typer.Option(64, "--batch-size", help="encoding batch size"),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="truncate texts to N tokens"),
) -> None:
    """Mine positive-aware hard negatives (NV-Retriever) into a triplet file the train command reads."""
    from sbert_triplet.errors import ConfigError
    from sbert_triplet.mining import MiningConfig, run_mining
    from sbert_triplet.mining.report import summary
    from sbert_triplet.models import load_model

    if max_score_ratio is not None and margin is not None:
        raise ConfigError("give either --max-score-ratio or --margin, not both")
    if no_filter and (max_score_ratio is not None or margin is not None):
        raise ConfigError("--no-false-negative-filter cannot be combined with --max-score-ratio or --margin")
    ratio = max_score_ratio if max_score_ratio is not None else (None if margin is not None or no_filter else 0.95)
    cfg = MiningConfig(candidates=candidates, search=search, range_min=range_min, range_max=range_max, num_negatives=num_negatives,
                       max_score_ratio=ratio, margin=margin, sampling=sampling, seed=seed, batch_size=batch_size)
    _set_offline_defaults()
    encoder = load_model(model, max_seq_length=max_seq_length)
    report = run_mining(encoder, data, output, cfg, split=split, columns=columns)
    typer.echo(summary(report))


@app.command()
def push(
    model: str = typer.Option(..., "--model", help="run folder to upload (the --output-dir of `sbert-triplet train`)"),
    repo_id: str = typer.Option(..., "--repo-id", help="Hub repo USER/NAME (created if missing)"),
    private: bool = typer.Option(False, "--private", help="create the repo as private"),
    revision: Optional[str] = typer.Option(None, "--revision", help="branch to commit to, created if missing [main]"),
    commit_message: Optional[str] = typer.Option(None, "--commit-message", help="commit message [Upload <folder> with sbert-triplet]"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print exactly the files and the card that would be uploaded; upload nothing"),
) -> None:
    """Upload a run folder (model, README.md card, metrics) to the Hugging Face Hub; token from HF_TOKEN or `hf auth login`."""
    from sbert_triplet.hub.push import format_plan, plan_push, push_folder

    plan = plan_push(model, repo_id, private=private, revision=revision, commit_message=commit_message)
    if dry_run:
        typer.echo(format_plan(plan))
        return
    typer.echo(json.dumps(push_folder(plan), indent=2))


@app.command()
def card(
    model: str = typer.Option(..., "--model", help="run folder (the --output-dir of `sbert-triplet train`)"),
    repo_id: Optional[str] = typer.Option(None, "--repo-id", help="Hub id shown in the usage snippet [the run's --push-to-hub]"),
) -> None:
    """Write (or rewrite) a run folder's README.md model card from its metrics.json and train_config.json; print it."""
    from sbert_triplet.hub.card import write_card

    typer.echo(write_card(model, repo_id).read_text(encoding="utf-8"))


@app.command("index")
def index_command(
    corpus: str = typer.Option(..., "--corpus", help="BEIR folder or corpus.jsonl[.gz], JSONL/CSV/TSV/Parquet with id and text columns, save_to_disk folder or HF dataset"),
    output: str = typer.Option(..., "--output", help="index folder (manifest.json, docs.jsonl, embeddings/, faiss.index); rerun to resume"),
    model: Optional[str] = typer.Option(None, "--model", help=_MODEL_HELP),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="id column (default: _id if present, else id)"),
    text_column: str = typer.Option("text", "--text-column", help="text column (BEIR records: title + text)"),
    split: Optional[str] = typer.Option(None, "--split", help="split of a save_to_disk folder / HF dataset (default: train)"),
    backend: str = typer.Option("exact", "--backend", help="exact | faiss-flat | faiss-hnsw | faiss-ivf"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | float16 embeddings on disk"),
    chunk_size: int = typer.Option(4096, "--chunk-size", help="documents per embedding file (unit of resume and of memory)"),
    batch_size: int = typer.Option(64, "--batch-size", help="encoding batch size"),
    score: Optional[str] = typer.Option(None, "--score", help="cosine | dot (default: the model's similarity function)"),
    hnsw_m: int = typer.Option(32, "--hnsw-m", help="faiss-hnsw graph degree M"),
    ef_construction: int = typer.Option(200, "--ef-construction", help="faiss-hnsw efConstruction"),
    ef_search: int = typer.Option(128, "--ef-search", help="faiss-hnsw efSearch (default for searches)"),
    nlist: Optional[int] = typer.Option(None, "--nlist", help="faiss-ivf cells (default: about 4 sqrt(N))"),
    nprobe: int = typer.Option(16, "--nprobe", help="faiss-ivf cells visited per query"),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="truncate texts to N tokens"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar over documents (stderr)"),
) -> None:
    """Encode a corpus chunk by chunk into an index folder (resumable) and build its search backend."""
    from sbert_triplet.index.config import IndexConfig
    from sbert_triplet.index.corpus import CorpusSpec

    cfg = IndexConfig(backend=backend, dtype=dtype, chunk_size=chunk_size, batch_size=batch_size, score=score,
                      hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search, nlist=nlist,
                      nprobe=nprobe, show_progress_bar=progress)
    _set_offline_defaults()
    from sbert_triplet.index.encode import encode_to_disk
    from sbert_triplet.models import load_model

    encoder = load_model(model, max_seq_length=max_seq_length)
    report = encode_to_disk(encoder, CorpusSpec(corpus, id_column, text_column, split), output, cfg, model_ref=model)
    typer.echo(json.dumps(report, indent=2))


@app.command("search")
def search_command(
    index_dir: str = typer.Option(..., "--index", help="index folder written by `sbert-triplet index`"),
    query: Optional[list[str]] = typer.Option(None, "--query", help="query text (repeat for several)"),
    queries: Optional[str] = typer.Option(None, "--queries", help="queries file: BEIR queries.jsonl / folder, JSONL/CSV with id,text, or .txt (one per line)"),
    k: int = typer.Option(10, "--k", help="hits per query"),
    model: Optional[str] = typer.Option(None, "--model", help="query encoder (default: the model recorded in the index); must be the model the index was built with"),
    backend: Optional[str] = typer.Option(None, "--backend", help="exact | faiss-flat | faiss-hnsw | faiss-ivf (default: the one built)"),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", help="faiss-hnsw efSearch"),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", help="faiss-ivf cells visited"),
    qrels: Optional[str] = typer.Option(None, "--qrels", help="qrels TSV (BEIR or TREC): print nDCG/MRR/Recall/MAP/P at --ks instead of hits"),
    ks: str = typer.Option("10,100", "--ks", help="metric cutoffs for --qrels, comma-separated"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    batch_size: int = typer.Option(64, "--batch-size", help="query encoding batch size"),
) -> None:
    """Search an index folder: top-k ids, scores and texts per query (or retrieval metrics with --qrels)."""
    from sbert_triplet.errors import ConfigError

    if bool(query) == bool(queries):
        raise ConfigError("give either --query TEXT (repeatable) or --queries FILE")
    _set_offline_defaults()
    from sbert_triplet.index.search import format_hits, hits_to_json, open_index, read_queries
    from sbert_triplet.index.store import read_manifest
    from sbert_triplet.models import load_model

    texts = {f"q{i}": q for i, q in enumerate(query, start=1)} if query else read_queries(queries)
    built = read_manifest(index_dir)
    encoder = load_model(model or built["model"]["path"], max_seq_length=built.get("max_seq_length"))
    indexed = open_index(index_dir, encoder, model_ref=model, backend=backend, ef_search=ef_search, nprobe=nprobe)
    if qrels:
        from sbert_triplet.evaluation.retrieval import evaluate_index, read_qrels_file

        if not all(x.strip().isdigit() for x in ks.split(",")):
            raise ConfigError(f"--ks must be comma-separated positive integers, e.g. 10,100; got {ks!r}")
        cutoffs = [int(x) for x in ks.split(",")]
        typer.echo(json.dumps(evaluate_index(indexed, texts, read_qrels_file(qrels), cutoffs, batch_size), indent=2))
        return
    hits = indexed.search(list(texts.values()), k, batch_size)
    if as_json:
        typer.echo(json.dumps(hits_to_json(texts, hits), indent=2, ensure_ascii=False))
    else:
        typer.echo(format_hits(texts, hits))


data_app = typer.Typer(help="Look at data sources: kind, column mapping, row counts.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("inspect")
def data_inspect(
    path: str = typer.Argument(..., help="file, BEIR folder or save_to_disk folder"),
    columns: Optional[str] = typer.Option(None, "--columns", help="column mapping, e.g. anchor=question,positive=answer"),
    split: Optional[str] = typer.Option(None, "--split", help="BEIR qrels split or saved DatasetDict split [train]"),
    rows: int = typer.Option(3, "--rows", help="how many first rows to show"),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON instead of text"),
) -> None:
    """Print the detected kind, the column mapping, row counts (read, valid, would be dropped) and the first rows."""
    from sbert_triplet.data.inspect import format_inspection, inspect_data

    info = inspect_data(path, columns=columns, split=split, rows=rows)
    typer.echo(json.dumps(info, indent=2, ensure_ascii=False) if as_json else format_inspection(info))


def main() -> None:
    """Console-script entry point: user errors print one clear line and exit with 2."""
    try:
        app()
    except SbertTripletError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
