"""AdamW with decoupled weight decay (none on biases and LayerNorm) and a linear schedule.

With ``fused_adamw`` (the default) AdamW runs PyTorch's fused kernel (CPU and CUDA): the
same update rule as the default multi-tensor kernel in one pass over each parameter
(equal within float rounding, ``tests/test_fast_paths.py``), as the sentence-transformers
trainer uses since torch 2.8.
"""

from __future__ import annotations

import torch

from sbert_triplet.config import OptimConfig

_NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm", "norm.weight")


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; biases and normalisation weights get no decay."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if any(key in name for key in _NO_DECAY) else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = cfg.fused_adamw and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point
                                    for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused or None)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """Linear warm-up over ``warmup_ratio * total_steps`` steps, then linear decay to 0."""
    from transformers import get_linear_schedule_with_warmup

    warmup = int(round(cfg.warmup_ratio * total_steps))
    return get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
