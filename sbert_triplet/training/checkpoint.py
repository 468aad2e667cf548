"""Checkpoints for exact resume, written so that a kill never leaves a broken one.

A checkpoint is ``OUTPUT/checkpoints/checkpoint-<step>/``: what ``accelerator.save_state``
writes (model weights, optimizer, LR scheduler, the fp16 gradient scaler when there is
one, the torch / CUDA / numpy / Python RNG states of every process, Accelerate's step
counter, and the registered :class:`TrainerState`) plus a readable ``trainer_state.json``.

Crash safety: everything is written to ``checkpoints/.tmp-checkpoint-<step>/`` and fsynced,
then renamed to its final name in one ``os.replace`` (atomic on POSIX), so a folder named
``checkpoint-<N>`` is always complete. A kill during a write leaves only the ``.tmp-``
folder, which "latest" ignores and the next save removes. Old checkpoints beyond
``--save-total-limit`` are first renamed to ``.deleting-...`` and then removed, so a kill
during pruning cannot leave a half-deleted folder that looks like a checkpoint either.

All processes call :func:`save_checkpoint` (each writes its own RNG state); only the main
process renames and prunes. Assumes the processes share the file system (one machine, or
a shared output folder).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sbert_triplet.errors import ConfigError

CHECKPOINTS = "checkpoints"
PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    """Where the loop stands; registered with ``accelerator.register_for_checkpointing``.

    ``batches_in_epoch`` counts the batches *this process* took in ``epoch``; with ``P``
    processes the sampler has handed out ``P`` times as many (see ``data/samplers.py``).
    """

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    examples: int = 0
    nonfinite_steps: int = 0  # skipped steps in total
    nonfinite_in_row: int = 0
    num_processes: int = 1
    batch_size: int = 0
    seed: int = 0
    total_steps: int = 0  # the LR schedule's length (from --max-steps or --epochs)
    before: dict[str, float] = field(default_factory=dict)  # the evaluation before training

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def checkpoint_root(output_dir: str | Path) -> Path:
    """``OUTPUT/checkpoints``."""
    return Path(output_dir) / CHECKPOINTS


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``root`` as ``(step, folder)``, oldest first (``.tmp-`` folders are not listed)."""
    root = Path(root)
    found = []
    for folder in root.glob(f"{PREFIX}*") if root.is_dir() else []:
        suffix = folder.name[len(PREFIX):]
        if folder.is_dir() and suffix.isdigit() and (folder / STATE_FILE).is_file():
            found.append((int(suffix), folder))
    return sorted(found)


def resolve_checkpoint(spec: str, output_dir: str | Path) -> Path:
    """The folder ``--resume-from-checkpoint`` names: ``latest`` (newest in OUTPUT/checkpoints) or a path.

    Raises:
        ConfigError: no checkpoint there, or the folder is not a complete checkpoint.
    """
    if spec == "latest":
        root = checkpoint_root(output_dir)
        found = list_checkpoints(root)
        if not found:
            raise ConfigError(f"--resume-from-checkpoint latest: no complete checkpoint in {root}; "
                              f"start without --resume-from-checkpoint (and with --save-steps N to write some)")
        return found[-1][1]
    folder = Path(spec)
    if not (folder / STATE_FILE).is_file():
        raise ConfigError(f"--resume-from-checkpoint {spec}: not a complete checkpoint folder (no {STATE_FILE}); "
                          f"pass a checkpoint-<step> folder or 'latest'")
    return folder


def check_resumable(state: TrainerState, num_processes: int, batch_size: int, seed: int, folder: Path,
                    total_steps: int = 0) -> None:
    """Raise ConfigError when the resumed run would draw other batches, or follow another
    learning-rate schedule (another total number of steps), than the saved one."""
    saved = {"processes": state.num_processes, "--batch-size": state.batch_size, "--seed": state.seed,
             "total steps (--max-steps / --epochs)": state.total_steps}
    now = {"processes": num_processes, "--batch-size": batch_size, "--seed": seed,
           "total steps (--max-steps / --epochs)": total_steps}
    if not state.total_steps:  # a checkpoint written before total_steps was recorded
        saved.pop("total steps (--max-steps / --epochs)")
    diff = [f"{k} {saved[k]} (now {now[k]})" for k in saved if saved[k] != now[k]]
    if diff:
        raise ConfigError(f"{folder} was saved with {', '.join(diff)}: the batches or the learning-rate schedule "
                          "would differ; resume with the same settings")


def save_checkpoint(accelerator, output_dir: str | Path, state: TrainerState, total_limit: int | None) -> Path:
    """Write ``checkpoint-<state.step>`` atomically (see the module docstring); return its folder.

    Call on every process at the same step.
    """
    root = checkpoint_root(output_dir)
    final, tmp = root / f"{PREFIX}{state.step}", root / f".tmp-{PREFIX}{state.step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in [*root.glob(".tmp-*"), *root.glob(".deleting-*")]:  # left by a kill during a save
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state.state_dict(), indent=2) + "\n")
        _fsync_tree(tmp)
        if final.exists():  # the same step saved again (a resumed run): replace it
            _remove(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        _prune(root, total_limit)
    accelerator.wait_for_everyone()
    return final


def _prune(root: Path, total_limit: int | None) -> None:
    if total_limit is None:
        return
    for _, folder in list_checkpoints(root)[:-total_limit]:
        _remove(folder)


def _remove(folder: Path) -> None:
    doomed = folder.with_name(f".deleting-{folder.name}")
    os.replace(folder, doomed)  # atomic: the checkpoint is gone as a whole before its files are
    shutil.rmtree(doomed, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
