"""Mining as a step before training (``sbert-triplet train --mine-negatives K``).

One command goes from a BEIR folder (or a pairs file) to a model: the base model mines K
positive-aware hard negatives per query (:func:`sbert_triplet.mining.run_mining`, same rules
as ``sbert-triplet mine``), the triplets are written under ``<output_dir>/mining/``, and
training reads them. The mining report (config and counts) goes into the run's
``metrics.json`` under ``data.mining`` (and from there into the model card).

A triplet file written earlier by ``sbert-triplet mine`` carries its report next to it
(``<stem>.report.json``): :func:`mining_report_for` finds it, so a model trained on it
records how its negatives were mined as well.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from sbert_triplet.config import TrainConfig
from sbert_triplet.mining.config import MiningConfig

MINED_FILE = "mining/hard_negatives.jsonl"


def mining_config(config: TrainConfig) -> MiningConfig:
    """The miner's configuration from the run's ``mining`` section (seed and encoding batch
    size from the run's ``optim`` / ``eval`` sections).

    Raises:
        ConfigError: an invalid value (see :class:`MiningConfig`).
    """
    mine = config.mining
    ratio, margin = mine.score_rule
    return MiningConfig(candidates=mine.mine_candidates, search=mine.mine_search, range_min=mine.mine_range_min,
                        range_max=mine.mine_range_max, num_negatives=mine.mine_negatives,
                        max_score_ratio=ratio, margin=margin, sampling=mine.mine_sampling,
                        seed=config.optim.seed, batch_size=config.eval.eval_batch_size)


def mine_before_training(config: TrainConfig, model: Any, is_main_process: bool = True,
                         wait: Any = None) -> tuple[TrainConfig, dict[str, Any]]:
    """Mine hard negatives for ``config.data.train`` with ``model`` and point the run at them.

    Args:
        config: the run; ``config.mining.mine_negatives`` = K >= 1.
        model: the base encoder (cosine similarity of its embeddings scores candidates).
        is_main_process: only the main process mines and writes; the others wait
            (``wait()``, e.g. ``accelerator.wait_for_everyone``) and read the same files.
        wait: barrier called after mining (``None``: single process).

    Returns:
        ``(config, report)``: the config with ``data.train`` = the mined triplet file (its
        ``columns`` and ``train_split`` cleared: the file has the canonical columns), and
        the mining report (``config``, ``counts``, ``scores``, ``files``).

    Raises:
        DataSchemaError: the training data cannot be mined (not a BEIR folder or pairs file).
        ConfigError: invalid mining options.
    """
    from sbert_triplet.mining.run import run_mining
    from sbert_triplet.mining.write import sidecar_path

    cfg = mining_config(config)
    output = Path(config.output_dir) / MINED_FILE
    split = config.data.train_split or "train"
    if is_main_process:
        output.parent.mkdir(parents=True, exist_ok=True)
        run_mining(model, config.data.train, output, cfg, split=split, columns=config.data.columns)
    if wait is not None:
        wait()
    report = json.loads(sidecar_path(output, ".report.json").read_text())
    data = dataclasses.replace(config.data, train=str(output), columns=None, train_split=None)
    return dataclasses.replace(config, data=data), report


def mining_report_for(train_path: str) -> dict[str, Any] | None:
    """The mining report written next to a mined triplet file (``<stem>.report.json``), or
    ``None`` when ``train_path`` was not written by ``sbert-triplet mine``."""
    from sbert_triplet.mining.write import sidecar_path

    path = Path(train_path)
    if not path.is_file() or not path.name.endswith((".jsonl", ".jsonl.gz")):
        return None
    report = sidecar_path(path, ".report.json")
    if not report.is_file():
        return None
    try:
        data = json.loads(report.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "counts" in data else None
