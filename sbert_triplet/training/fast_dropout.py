"""Dropout with a faster mask generator on CPU: the same Bernoulli(1 - p) masks, drawn in parallel.

On CPU, ``torch.nn.functional.dropout`` draws its keep-mask with ``bernoulli_`` on one
thread. BERT draws a mask after the embeddings, after every
attention-output and feed-forward block, and over every attention probability matrix
(``batch x heads x length x length`` values per layer), so at 256 tokens the mask draws
are 26% of the sentence-transformers trainer's MiniLM step (``bench/step_profile.py``).
Here the mask comes from NumPy's SFC64 generator, filled by two
threads, 8 random bits per element with an exact tie rule (:func:`dropout_mask`: the keep
rate is exactly ``1 - p``), straight into a float mask holding 0 or ``1 / (1 - p)``, so
applying it is one multiply (a bool mask costs a conversion pass per use). The computation is the usual inverted dropout,
``y = x * mask / (1 - p)``, backward ``dy * mask / (1 - p)``; only the random stream
differs from torch's (as it does between any two seeds).

Determinism: every mask is seeded from torch's default CPU generator (one ``randint``
per call), so ``torch.manual_seed``, checkpointed RNG state (exact resume) and the
gradient cache's RNG replay reproduce the same masks.

:func:`fast_cpu_dropout` switches a model to it for the duration of training: each
``nn.Dropout`` module is swapped for :class:`FastDropout`, and the attention of a
transformers model that uses the ``sdpa`` implementation goes through
:func:`attention_with_fast_dropout` (in eval mode, or with dropout 0, that is ``sdpa``
itself; in training, the matmul-softmax-dropout-matmul of eager attention, because
PyTorch's CPU ``scaled_dot_product_attention`` falls back to that path with ``bernoulli_``
whenever dropout is on; for long texts it runs in cache-sized blocks,
:mod:`~sbert_triplet.training.blocked_attention`). Everything is restored on exit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor, nn

ATTENTION_NAME = "sbert_triplet_fast_dropout"
_THREADS = 2
_MIN_PARALLEL = 1 << 16  # below this many values one thread is faster than two
_pool: ThreadPoolExecutor | None = None


def torch_seed() -> int:
    """One 63-bit draw from torch's default CPU generator (so masks follow ``torch.manual_seed``)."""
    return int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64).item())


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, seed: int | Sequence[int] | None = None,
                 parallel: bool = True) -> Tensor:
    """A float32 tensor of ``shape`` holding ``1 / (1 - p)`` with probability ``1 - p`` and 0 otherwise,
    independently per element (inverted dropout's scaled keep-mask).

    Exact Bernoulli from 8 random bits per element: with ``256 p = k + f`` (integer k,
    fraction f), a byte u drops when u < k, keeps when u > k, and on a tie (u == k,
    probability 1/256) drops with probability f (one double-precision uniform per tie):
    P(drop) = k/256 + f/256 = p. ``seed`` (an int or a sequence of ints, NumPy
    ``SeedSequence`` entropy) fixes the mask; by default it is one draw from torch's default CPU
    generator (:func:`torch_seed`), so the mask follows ``torch.manual_seed``. ``parallel``:
    fill large masks with two threads (the mask depends on it: keep it fixed for a given use).

    Raises:
        ValueError: ``p`` is not in [0, 1).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    n = math.prod(shape)
    seed = torch_seed() if seed is None else seed
    k, frac = divmod(p * 256, 1.0)
    k = np.uint8(k)
    scale = np.float32(1.0 / (1.0 - p))
    out = np.empty(n, dtype=np.float32)
    parts = _THREADS if parallel and n >= _MIN_PARALLEL else 1
    bounds = [n * i // parts for i in range(parts + 1)]
    seeds = np.random.SeedSequence(seed).spawn(parts)

    def fill(i: int) -> None:
        lo, hi = bounds[i], bounds[i + 1]
        bits = np.random.SFC64(seeds[i])
        draws = bits.random_raw((hi - lo + 7) // 8).view(np.uint8)[:hi - lo]  # 64 random bits = 8 byte draws
        keep = draws > k
        ties = np.flatnonzero(draws == k)
        if len(ties):
            keep[ties] = np.random.Generator(bits).random(len(ties)) >= frac
        np.multiply(keep, scale, out=out[lo:hi])

    if parts == 1:
        fill(0)
    else:
        global _pool
        if _pool is None:
            _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="sbert-dropout")
        list(_pool.map(fill, range(parts)))
    return torch.from_numpy(out).view(shape)


class _Dropout(torch.autograd.Function):
    """y = x * mask, with the scaled mask of :func:`dropout_mask` (in x's dtype) saved for backward."""

    @staticmethod
    def forward(ctx, x: Tensor, p: float) -> Tensor:
        mask = dropout_mask(x.shape, p).to(device=x.device, dtype=x.dtype)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad: Tensor):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def fast_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout of ``x`` (any shape) with drop probability ``p``; identity when not training or p == 0."""
    if not training or p == 0.0:
        return x
    return _Dropout.apply(x, p)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same train/eval behaviour) whose mask comes from :func:`dropout_mask`."""

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(x)
        return fast_dropout(x, self.p, self.training)


def attention_with_fast_dropout(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                                attention_mask: Tensor | None, dropout: float = 0.0,
                                scaling: float | None = None, **kwargs) -> tuple[Tensor, None]:
    """A transformers attention function: ``sdpa`` when dropout is 0, else eager attention with :func:`fast_dropout`.

    Shapes: query (B, H, Lq, d), key and value (B, H, Lk, d), attention_mask None or
    broadcastable to (B, H, Lq, Lk) (bool: True = attend, as ``sdpa`` masks are; or
    additive float). Returns (B, Lq, H, d) and no attention weights, like ``sdpa``.
    Causal or grouped-query attention goes to ``sdpa`` unchanged.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or getattr(module, "is_causal", False) or getattr(module, "num_key_value_groups", 1) > 1 \
            or kwargs.get("is_causal"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    out = eager_attention(query, key, value, attention_mask, scaling, dropout if module.training else 0.0)
    return out.transpose(1, 2).contiguous(), None  # (B, Lq, H, d)


def eager_attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scaling: float, dropout: float,
                    fast: bool = True, blocked: bool = True) -> Tensor:
    """softmax(scaling * Q K^T, masked) with dropout on the probabilities, times V.  -> (B, H, Lq, d)

    ``mask``: None, bool (True = attend) or additive float, broadcastable to (B, H, Lq, Lk).
    ``fast``: draw the dropout mask with :func:`dropout_mask`, else ``torch.nn.functional.dropout``.
    ``blocked``: with ``fast``, dropout > 0, CPU tensors and attention matrices larger than
    a few cache-sized blocks (long texts), compute it block by block in cache
    (:func:`~sbert_triplet.training.blocked_attention.blocked_attention`: the same function,
    masks drawn per block); else whole, as written below.
    """
    if fast and blocked and dropout > 0.0 and query.device.type == "cpu":
        from sbert_triplet.training import blocked_attention as blocked_module

        if query.shape[0] * query.shape[1] * query.shape[2] * key.shape[2] >= blocked_module.MIN_VALUES:
            return blocked_module.blocked_attention(query, key, value, mask, scaling, dropout)
    scores = torch.matmul(query * scaling, key.transpose(2, 3))  # (B, H, Lq, Lk); scaled on the smaller side
    if mask is not None:
        if mask.dtype == torch.bool:  # in place: matmul's backward does not need its output
            scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(query.dtype)
    probs = fast_dropout(probs, dropout) if fast else torch.nn.functional.dropout(probs, dropout)
    return torch.matmul(probs, value)


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, attention_with_fast_dropout)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)


def _transformers_models(model: nn.Module) -> list[nn.Module]:
    from transformers import PreTrainedModel

    return [m for m in model.modules() if isinstance(m, PreTrainedModel)]


@contextlib.contextmanager
def fast_cpu_dropout(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Within the block, ``model``'s dropout draws its masks with :func:`dropout_mask`.

    Swaps every ``nn.Dropout`` child for a :class:`FastDropout` with the same ``p`` and
    switches transformers models that use ``sdpa`` attention to
    :func:`attention_with_fast_dropout`; both are undone on exit, even on error. Yields the
    number of dropout modules swapped (0 when ``enabled`` is False: nothing changes).
    """
    if not enabled:
        yield 0
        return
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    switched: list[nn.Module] = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Dropout:
                    fast = FastDropout(child.p, child.inplace)
                    fast.train(child.training)
                    setattr(parent, name, fast)
                    swapped.append((parent, name, child))
        hf_models = _transformers_models(model)
        if any(m.config._attn_implementation == "sdpa" for m in hf_models):
            _register_attention()
        for m in hf_models:
            if m.config._attn_implementation == "sdpa":
                m.config._attn_implementation_internal = ATTENTION_NAME
                switched.append(m)
        yield len(swapped)
    finally:
        for m in switched:
            m.config._attn_implementation_internal = "sdpa"
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
