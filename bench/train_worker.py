"""One side of the training benchmark (``st`` or ``ours``) in its own process; driven by train_vs_st.py.

Protocol: the worker loads the model and data, trains a warm-up round, then prints
``READY``; each ``ROUND i`` line on stdin trains a fresh copy of the base model for
``steps`` steps and prints one JSON result; ``QUIT`` ends it. Replies go to the original
stdout; everything the libraries print goes to stderr. The parent sends one command at a
time, so the two workers of a setting never compute at once.

Timing: from the start of the training loop (ST: ``on_train_begin``; ours: the log
window's start) to the end of each step; with more than one step the first step is left
out (it pays for lazy set-up on both sides). Peak memory: the RSS high-water mark of the
round (reset before it through ``/proc/self/clear_refs``), or CUDA's peak allocation.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("SBERT_TRIPLET_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
WARMUP_STEPS = 2


def load_rows(spec: dict):
    """The training rows: SNLI test triplets or SciFact train (query, abstract) pairs, repeated to fill all steps."""
    import datasets

    from sbert_triplet.data import load_training_data

    if spec["data"] == "snli":
        rows, _ = load_training_data(str(DATA / "snli" / "snli_triplets_test.jsonl.gz"))
    else:
        rows, _ = load_training_data(str(DATA / "scifact"), split="train")
    need = spec["batch_size"] * max(spec["steps"], WARMUP_STEPS)
    if len(rows) < need:
        rows = datasets.concatenate_datasets([rows] * (need // len(rows) + 1))
    return rows.shuffle(seed=spec["seed"])


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        pass


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(ends: list[float], batch_size: int) -> tuple[float, int]:
    """Examples/s from step end times (seconds since the loop started); skips step 1 when there are more."""
    if len(ends) > 1:
        return (len(ends) - 1) * batch_size / (ends[-1] - ends[0]), len(ends) - 1
    return batch_size / ends[0], 1


class CountingCollator:
    """ST's data collator, counting the real and padded tokens of the first ``limit`` batches it makes
    (the trainer's data loader makes one batch more than it trains on)."""

    def __init__(self, collate, tokens: dict, limit: int) -> None:
        self.collate, self.tokens, self.limit, self.made = collate, tokens, limit, 0

    def __getattr__(self, name):
        return getattr(self.collate, name)

    def __call__(self, features):
        batch = self.collate(features)
        self.made += 1
        for key, value in batch.items():
            if key.endswith("attention_mask") and self.made <= self.limit:
                self.tokens["real"] += int(value.sum())
                self.tokens["padded"] += value.numel()
        return batch


def train_st(model, rows, spec: dict, steps: int, out: str) -> dict:
    """``SentenceTransformerTrainer`` with the matching loss; step times and token counts recorded."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses
    from transformers import TrainerCallback

    if spec.get("mini_batch_size"):
        loss = losses.CachedMultipleNegativesRankingLoss(model, scale=20.0, mini_batch_size=spec["mini_batch_size"])
    elif spec["loss"] == "mnr":
        loss = losses.MultipleNegativesRankingLoss(model, scale=20.0)
    else:
        loss = losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.EUCLIDEAN, triplet_margin=0.5)
    ends: list[float] = []
    tokens = {"real": 0, "padded": 0}

    class Clock(TrainerCallback):
        def on_train_begin(self, *args, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            ends.append(time.perf_counter() - self.start)

    args = SentenceTransformerTrainingArguments(
        output_dir=out, per_device_train_batch_size=spec["batch_size"], max_steps=steps, learning_rate=2e-5,
        warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0, bf16=spec["bf16"],
        use_cpu=spec["device"] == "cpu", report_to="none", save_strategy="no", logging_strategy="no",
        disable_tqdm=True, dataloader_drop_last=True, seed=spec["seed"], batch_sampler="batch_sampler")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=rows, loss=loss, callbacks=[Clock()])
    trainer.data_collator = CountingCollator(trainer.data_collator, tokens, limit=steps)
    result = trainer.train()
    per_s, timed = throughput(ends, spec["batch_size"])
    return {"examples_per_s": per_s, "steps_timed": timed, "final_loss": result.training_loss, **_per_example(
        tokens, steps, spec)}


def train_ours(model, rows, spec: dict, steps: int, out: str) -> dict:
    """This package's ``train`` with the same loss, sampler, schedule and precision."""
    from sbert_triplet.config import build_train_config
    from sbert_triplet.training.loop import train

    values = {"train": "in-memory", "output_dir": out, "loss": spec["loss"], "sampler": "random",
              "batch_size": spec["batch_size"], "max_steps": steps, "max_seq_length": spec["max_seq_length"],
              "bf16": spec["bf16"], "seed": spec["seed"], "log_steps": 1, "eval_before": False,
              "length_buckets": spec.get("length_buckets", True)}
    if spec["loss"] == "mnr":
        values.update(mask_false_negatives=False, scale=20.0)
    else:
        values.update(distance="euclidean", margin=0.5)
    if spec.get("mini_batch_size"):
        values["mini_batch_size"] = spec["mini_batch_size"]
    metrics = train(build_train_config(values), model=model, train_dataset=rows, evaluators=[])
    log = [json.loads(x) for x in (Path(out) / "train_log.jsonl").read_text().splitlines()]
    steps_log = [r for r in log if r.get("event") == "train"]
    per_s, timed = throughput([r["elapsed_s"] for r in steps_log], spec["batch_size"])
    tokens = {"real": sum(r.get("real_tokens", 0) for r in steps_log),
              "padded": sum(r.get("padded_tokens", 0) for r in steps_log)}
    return {"examples_per_s": per_s, "steps_timed": timed, "final_loss": metrics["train"]["final_loss"],
            **_per_example(tokens, steps, spec)}


def _per_example(tokens: dict, steps: int, spec: dict) -> dict:
    examples = steps * spec["batch_size"]
    return {"real_tokens_per_example": tokens["real"] / examples, "padded_tokens_per_example": tokens["padded"] / examples}


def sts_dev_spearman(model) -> float:
    from sbert_triplet.data import load_sts
    from sbert_triplet.evaluation import STSEvaluator

    model.eval()
    result = STSEvaluator(load_sts(str(DATA / "stsbenchmark" / "sts-dev.csv")), batch_size=64)(model)
    return 100 * float(result["spearman_cosine"])


def run_round(side: str, base, rows, spec: dict, steps: int, evaluate: bool) -> dict:
    model = copy.deepcopy(base)
    reset_peak(spec["device"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench_{side}_") as out:
        result = (train_st if side == "st" else train_ours)(model, rows, spec, steps, out)
    result.update(wall_s=time.perf_counter() - start, peak_mb=peak_mb(spec["device"]))
    if evaluate:
        result["sts_dev_spearman"] = sts_dev_spearman(model)
    return result


def main() -> None:
    side, spec = sys.argv[1], json.loads(sys.argv[2])
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library output to stderr; stdout carries only the protocol
    import torch

    from sbert_triplet.models import load_model

    torch.manual_seed(spec["seed"])
    base = load_model(spec.get("model"), device=spec["device"], max_seq_length=spec["max_seq_length"])
    rows = load_rows(spec)
    run_round(side, base, rows, {**spec, "batch_size": min(spec["batch_size"], 64)}, WARMUP_STEPS, evaluate=False)
    reply.write("READY " + json.dumps({"threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        command = line.split()
        if command[0] == "ROUND":
            i = int(command[1])  # round i draws batches with seed + i on both sides: new shapes, as in real training
            result = run_round(side, base, rows, {**spec, "seed": spec["seed"] + i}, spec["steps"],
                               evaluate=spec["evaluate"] and i == 1)
            reply.write("RESULT " + json.dumps(result) + "\n")
        elif command[0] == "QUIT":
            break


if __name__ == "__main__":
    main()
