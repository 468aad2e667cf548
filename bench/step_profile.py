"""Where a training step's time goes, for sentence-transformers' trainer and for ours (torch.profiler).

Run by hand, with nothing else running:

    python bench/step_profile.py --out bench/results/step_profile.json

For each setting (the same workers, data, loss and options as ``train_vs_st.py``), each
side trains a warm-up round and then ``steps`` profiled steps; the self CPU time of every
operator is summed into a few groups:

- ``matmul``: ``mm``, ``addmm``, ``bmm`` (the useful FLOPs);
- ``dropout masks``: drawing the random keep-masks (torch's ``bernoulli_``, or our
  parallel generator, which shows up as the ``_Dropout`` Python function);
- ``blocked attention``: our attention in cache-sized blocks (``_BlockedAttention`` and its
  backward: its matmuls, softmax and masks run on worker threads, which the profiler does
  not see, so they are counted here and not under ``matmul``);
- ``optimizer``: AdamW kernels; ``embedding gradient``: the dense token-embedding
  gradient (``embedding_dense_backward`` and the ``fill_`` of its zeros; any other
  ``fill_`` / ``zero_`` lands here too);
- ``other``: everything else (softmax, GELU, LayerNorm, copies, masking, Python).

Writes ``--out`` (JSON) and the same path with ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TOP_OPS = 12  # the JSON also lists this many operators with the most self time, per side
GROUPS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
    "dropout masks": ("aten::bernoulli_", "_Dropout", "aten::native_dropout"),
    "blocked attention": ("_BlockedAttention",),
    "optimizer": ("aten::_fused_adamw_", "aten::_foreach_", "Optimizer.step"),
    "embedding gradient": ("aten::embedding_dense_backward", "aten::fill_", "aten::zero_"),
}
SETTINGS = [
    {"name": "SNLI triplets, MNR", "data": "snli", "loss": "mnr", "batch_size": 32, "max_seq_length": 64, "steps": 4,
     "bf16": False},
    {"name": "SNLI triplets, MNR", "data": "snli", "loss": "mnr", "batch_size": 32, "max_seq_length": 64, "steps": 4,
     "bf16": True},
    {"name": "SciFact pairs, MNR", "data": "scifact", "loss": "mnr", "batch_size": 32, "max_seq_length": 256,
     "steps": 2, "bf16": False},
    {"name": "SciFact pairs, MNR", "data": "scifact", "loss": "mnr", "batch_size": 32, "max_seq_length": 256,
     "steps": 2, "bf16": True},
]


def group_of(name: str) -> str:
    for group, prefixes in GROUPS.items():
        if any(name.startswith(p) for p in prefixes):
            return group
    return "other"


def profile_side(side: str, spec: dict) -> dict:
    import copy
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile

    from sbert_triplet.models import load_model
    from train_worker import WARMUP_STEPS, load_rows, train_ours, train_st

    torch.manual_seed(spec["seed"])
    base = load_model(None, device="cpu", max_seq_length=spec["max_seq_length"])
    rows = load_rows(spec)
    run = train_st if side == "st" else train_ours
    with tempfile.TemporaryDirectory() as out:
        run(copy.deepcopy(base), rows, spec, WARMUP_STEPS, out)
    model = copy.deepcopy(base)
    with tempfile.TemporaryDirectory() as out, profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        result = run(model, rows, spec, spec["steps"], out)
        wall = time.perf_counter() - start
    groups: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        groups[group_of(event.key)] += event.self_cpu_time_total / 1e6
    total = sum(groups.values())
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP_OPS]
    return {"wall_s_per_step": wall / spec["steps"], "examples_per_s_profiled": result["examples_per_s"],
            "self_s_per_step": {k: v / spec["steps"] for k, v in sorted(groups.items())},
            "share": {k: v / total for k, v in sorted(groups.items())},
            "top_ops_self_s_per_step": {e.key: e.self_cpu_time_total / 1e6 / spec["steps"] for e in top}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results" / "step_profile.json"))
    parser.add_argument("--side", choices=["st", "ours"], help=argparse.SUPPRESS)  # one side per process
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # child: profile one side and print its JSON
        print("RESULT " + json.dumps(profile_side(args.side, json.loads(args.spec))), flush=True)
        return
    import subprocess

    report = {"command": "python bench/step_profile.py --out " + args.out, "settings": []}
    for setting in SETTINGS:
        spec = {**setting, "seed": 42, "device": "cpu"}
        entry = {"spec": spec}
        for side in ("st", "ours"):  # one process at a time, each in its own process (fresh allocator)
            proc = subprocess.run([sys.executable, __file__, "--side", side, "--spec", json.dumps(spec)],
                                  capture_output=True, text=True, check=True)
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            entry[side] = json.loads(line[len("RESULT "):])
            print(spec["name"], "bf16" if spec["bf16"] else "fp32", side,
                  {k: round(v, 3) for k, v in entry[side]["self_s_per_step"].items()}, flush=True)
        report["settings"].append(entry)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    names = list(GROUPS) + ["other"]
    lines = ["Self CPU seconds per training step by operator group (share of the summed self CPU time, "
             "which is not the wall time of a step), torch.profiler; "
             f"`{report['command']}`.", "",
             "| setting | precision | side | " + " | ".join(names) + " | total |",
             "|---|---|---|" + "---|" * (len(names) + 1)]
    for entry in report["settings"]:
        spec = entry["spec"]
        for side in ("st", "ours"):
            s = entry[side]
            cells = [f"{s['self_s_per_step'].get(n, 0):.2f} ({100 * s['share'].get(n, 0):.0f}%)" for n in names]
            lines.append(f"| {spec['name']} | {'bf16' if spec['bf16'] else 'fp32'} | "
                         f"{'ST trainer' if side == 'st' else 'ours'} | " + " | ".join(cells) +
                         f" | {sum(s['self_s_per_step'].values()):.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
