"""One token-embedding lookup per batch instead of one per encoded chunk.

The backward of ``nn.Embedding`` writes a dense gradient of the whole table
(vocabulary x hidden: 30,522 x 384 floats, 47 MB, for MiniLM) and autograd adds it into
``weight.grad``. Length buckets encode a batch in several chunks, so that fill-and-add
happened once per chunk.
:func:`one_lookup_per_batch` gathers the rows of the batch's distinct token ids once,
``table = embedding(distinct_ids)`` (U x hidden, with autograd), and while the chunks are
encoded the model's input embedding reads from that table. The forward values are the
same rows; the gradient reaching ``weight`` is the same sum (one dense write instead of
one per chunk); the padding row still gets no gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _TableLookup(nn.Module):
    """Looks token ids up in a per-batch table of rows (ids outside the table are an error)."""

    def __init__(self, original: nn.Embedding, remap: Tensor, table: Tensor) -> None:
        super().__init__()
        self.original = [original]  # a list, so it is not registered as a submodule (no duplicate parameters)
        self.remap, self.table = remap, table

    @property
    def weight(self) -> Tensor:  # code that reads ``get_input_embeddings().weight`` still finds the model's weight
        return self.original[0].weight

    def forward(self, input_ids: Tensor) -> Tensor:
        rows = self.remap[input_ids]
        if bool((rows < 0).any()):
            raise RuntimeError("a token id outside this batch's lookup table; was the chunk part of the batch?")
        return F.embedding(rows, self.table)


def _input_embedding_owner(model: nn.Module):
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            return module
    return None


@contextlib.contextmanager
def one_lookup_per_batch(model: nn.Module, chunks: Sequence[dict], enabled: bool = True) -> Iterator[bool]:
    """Within the block, the model's token embeddings come from one lookup of ``chunks``' token ids.

    Args:
        model: a SentenceTransformer (or any module holding one transformers model).
        chunks: the feature dicts that will be encoded inside the block (their ``input_ids``).
        enabled: False changes nothing.

    Yields True when the lookup was shared, False when it was left alone: disabled, no
    gradient is recorded, no transformers model or plain ``nn.Embedding`` input embedding
    (``max_norm`` set, frozen weight), or fewer than two chunks. Restores the model's
    embedding on exit.
    """
    owner = _input_embedding_owner(model) if enabled and len(chunks) > 1 and torch.is_grad_enabled() else None
    embedding = owner.get_input_embeddings() if owner is not None else None
    usable = (type(embedding) is nn.Embedding and embedding.max_norm is None and embedding.weight.requires_grad
              and all("input_ids" in c for c in chunks))
    if not usable:
        yield False
        return
    weight = embedding.weight
    ids = torch.cat([c["input_ids"].reshape(-1).to(weight.device) for c in chunks])
    distinct = torch.unique(ids)  # (U,)
    remap = torch.full((embedding.num_embeddings,), -1, dtype=torch.long, device=weight.device)
    remap[distinct] = torch.arange(len(distinct), device=weight.device)
    table = F.embedding(distinct, weight, padding_idx=embedding.padding_idx)  # (U, hidden), one backward into weight
    owner.set_input_embeddings(_TableLookup(embedding, remap, table))
    try:
        yield True
    finally:
        owner.set_input_embeddings(embedding)
