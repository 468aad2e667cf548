"""Inference throughput: ``SentenceTransformer.encode`` vs this package's ``encode_texts``.

Run by hand with nothing else running:

    python bench/encode_vs_st.py --out bench/results/encode_vs_st.json     # ~3 min on 2 cores
    python bench/encode_vs_st.py --quick --out /tmp/encode_quick.json

all-MiniLM-L6-v2; texts: the 3,000 STS-B dev sentences (short, 64 tokens max) and the
first 1,000 SciFact abstracts (256 tokens max). ``encode(batch_size=64)`` against
``encode_texts`` (token-sorted chunks of at most 64 x max_seq_length padded tokens, the
same worst-case memory), both in fp32 and both under bf16 autocast. One process, one
warm-up, then interleaved rounds (ST first in odd rounds); medians. Agreement: the
smallest cosine between each side's embedding and ST's fp32 embedding of the same text.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import shlex
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SBERT_TRIPLET_DATA", HERE.parent.parent / "shared" / "data"))


def text_sets(quick: bool) -> dict[str, tuple[list[str], int]]:
    from sbert_triplet.data import load_sts

    sts = load_sts(str(DATA / "stsbenchmark" / "sts-dev.csv"))
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for _, line in zip(range(1000), f)]
    abstracts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    n = 200 if quick else None
    return {"STS-B dev sentences": ((sts.sentence1 + sts.sentence2)[:n], 64),
            "SciFact abstracts": (abstracts[:n], 256)}


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results" / "encode_vs_st.json"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    from sbert_triplet.models import load_model
    from sbert_triplet.training.encode import encode_texts

    model = load_model(None, device=args.device)
    rows = []
    for name, (texts, max_len) in text_sets(args.quick).items():
        model.max_seq_length = max_len
        reference = model.encode(texts, batch_size=64, convert_to_tensor=True)  # fp32, also the warm-up
        for bf16 in (False, True):
            autocast = (lambda: torch.autocast(model.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
            sides = {
                "st": lambda: _st(model, texts, autocast),
                "ours": lambda: encode_texts(model, texts, bf16=bf16),
            }
            for fn in sides.values():
                fn()  # warm-up at this precision
            times = {"st": [], "ours": []}
            agree = {}
            for i in range(1, (1 if args.quick else args.rounds) + 1):
                for side in (("st", "ours") if i % 2 else ("ours", "st")):
                    seconds, emb = timed(sides[side])
                    times[side].append(seconds)
                    cos = torch.nn.functional.cosine_similarity(emb.float(), reference, dim=1)  # (N,)
                    agree[side] = float(cos.min())
            st, ours = (len(texts) / statistics.median(times[s]) for s in ("st", "ours"))
            rows.append({"texts": name, "n": len(texts), "max_seq_length": max_len, "precision": "bf16" if bf16 else "fp32",
                         "st_texts_per_s": st, "ours_texts_per_s": ours, "ratio": ours / st,
                         "min_cos_vs_st_fp32": agree, "seconds": times})
            print(rows[-1], flush=True)
    report = {"command": "python " + shlex.join(sys.argv), "threads": torch.get_num_threads(), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| texts | precision | ST encode texts/s | ours texts/s | ratio | min cosine vs ST fp32 (ST, ours) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['texts']} ({r['n']}, {r['max_seq_length']} tokens) | {r['precision']} | "
                     f"{r['st_texts_per_s']:.1f} | {r['ours_texts_per_s']:.1f} | **{r['ratio']:.2f}x** | "
                     f"{r['min_cos_vs_st_fp32']['st']:.5f}, {r['min_cos_vs_st_fp32']['ours']:.5f} |")
    lines += ["", f"Command: `{report['command']}`; {report['threads']} torch threads."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _st(model, texts, autocast):
    import torch

    with autocast(), torch.inference_mode():
        return model.encode(texts, batch_size=64, convert_to_tensor=True)


if __name__ == "__main__":
    main()
