"""Run configuration: frozen dataclasses, one per concern, validated in ``__post_init__``.

The CLI and YAML files are built from these. A YAML file may be flat
(``loss: mnr``, ``batch_size: 32``) or grouped by section (``loss: {name: mnr}``);
keys may use ``-`` or ``_``. An unknown key is an error that suggests the closest one.
CLI flags override YAML values.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sbert_triplet.errors import ConfigError

LOSSES = ("triplet", "mnr")
IN_BATCH_NEGATIVE_LOSSES = ("mnr",)


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
    """Which loss and its parameters."""

    loss: str = field(default="mnr", metadata={"help": "triplet | mnr"})
    margin: float = field(default=0.5, metadata={"help": "triplet margin, in units of the distance"})
    distance: str = field(default="euclidean", metadata={"help": "triplet distance: euclidean | cosine (1 - cos)"})
    scale: float = field(default=20.0, metadata={"help": "MNR scale = 1 / temperature, applied to cosine similarities"})

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.scale <= 0:
            raise ConfigError(f"scale must be > 0 (it is 1/temperature), got {self.scale}")
        if self.margin < 0:
            raise ConfigError(f"margin must be >= 0, got {self.margin}")


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
    seed: int = field(default=42, metadata={"help": "random seed (shuffling, dropout, init)"})

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate on, before, during and after training."""

    eval_sts: str | None = field(default=None, metadata={"help": "STS file (STS-B csv, SICK txt, or jsonl)"})
    eval_triplets: str | None = field(default=None, metadata={"help": "triplet file for triplet accuracy"})
    eval_ir: str | None = field(default=None, metadata={"help": "BEIR folder for nDCG@10 / MRR@10 / Recall@k"})
    eval_split: str = field(default="test", metadata={"help": "qrels split of --eval-ir"})
    eval_steps: int | None = field(default=None, metadata={"help": "evaluate every N steps (and always at the end)"})
    eval_batch_size: int = field(default=64, metadata={"help": "batch size for encoding during evaluation"})


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run."""

    data: DataConfig
    output_dir: str = ""
    model: str | None = None
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log_steps: int = 10

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ConfigError("no output directory: pass --output-dir DIR")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SECTIONS = {"data": DataConfig, "loss": LossConfig, "optim": OptimConfig, "eval": EvalConfig}
_TOP = ("output_dir", "model", "log_steps")


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
    return flat


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
