"""Padding-free BERT training forward: the batch's real tokens as one (T, hidden) matrix.

Length buckets (:mod:`~sbert_triplet.training.bucketing`) still pad each chunk to its
longest text and run every layer once per chunk. In a BERT layer only attention needs the
texts apart; the embeddings, the Q/K/V and output projections, the feed-forward block,
LayerNorm, dropout and the residual adds act on each token alone. :func:`encode_packed`
runs those on all real tokens of all chunks at once, ``T x hidden`` with no padding (one
large matrix product per projection instead of one small one per chunk), and only the
attention core on the chunks' padded ``(n, heads, L, d)`` layout, with padded keys masked
out. The layer modules are the model's own (its ``nn.Linear``, ``LayerNorm``, dropout),
so the parameters, their gradients and the saved model are unchanged; the pooling and
normalisation modules after the transformer run per chunk on the token embeddings put
back into the padded layout, as ``SentenceTransformer`` would run them.

With dropout off the embeddings and every gradient equal the per-chunk forward's
(``tests/test_packed.py``, float64, within 1e-10). With dropout on, masks are drawn per
token instead of per padded slot: the same distribution for every real token.

Used for ``SentenceTransformer(Transformer(BertModel), Pooling[, Normalize, ...])`` on CPU,
one process, without the gradient cache; anything else keeps the per-chunk path
(:func:`supports_packed` says which).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks

from sbert_triplet.training.fast_dropout import FastDropout, eager_attention


def _bert(model):
    """The BertModel inside ``model`` when the packed path can run it, else None."""
    try:
        from sentence_transformers import SentenceTransformer
        from transformers import BertModel
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    if type(model) is not SentenceTransformer or len(model) < 2 or type(model[0]).__name__ != "Transformer":
        return None
    bert = getattr(model[0], "auto_model", None)
    if type(bert) is not BertModel:
        return None
    cfg = bert.config
    if cfg.is_decoder or getattr(cfg, "add_cross_attention", False) or getattr(cfg, "chunk_size_feed_forward", 0) \
            or getattr(cfg, "position_embedding_type", "absolute") != "absolute" \
            or getattr(cfg, "output_hidden_states", False):
        return None
    skipped = [model, model[0], bert, bert.embeddings, bert.encoder]  # modules whose forward is not called
    for layer in bert.encoder.layer:
        skipped += [layer, layer.attention, layer.attention.self]
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in skipped) \
            or _global_forward_hooks or _global_forward_pre_hooks:
        return None  # a hook on one of them would silently not run
    return bert


def supports_packed(model) -> bool:
    """True for a plain SentenceTransformer whose first module is a transformers ``BertModel``
    encoder (absolute positions, no decoder or cross-attention) and no forward hook on a module
    the packed forward does not call (the model, its transformer, encoder, layers, attention);
    DDP-wrapped models are not."""
    return _bert(model) is not None


class PackedLayout:
    """Where each chunk's real tokens sit in the packed (T, hidden) matrix.

    Tokens are packed chunk by chunk, row by row (right-padded rows: a text's tokens are its
    first ``len`` slots). With ``rows_multiple_of`` > 1, dummy rows (token id 0, never read
    by attention or pooling, so they get no gradient) round the packed rows up to a multiple
    of it, so that the matrix shapes repeat across steps: in bf16 on CPU oneDNN prepares a
    kernel per new shape. For chunk ``c`` with ``(n, L)`` slots, ``sizes[c]`` is its number of
    tokens T_c (its rows follow the previous chunk's; ``sizes`` ends with the dummy rows, if
    any), ``gather[c]`` (n*L,) the row of each slot within the chunk's rows (padding slots
    point at its first row; they are masked out of attention and pooling, so they receive no
    gradient), and ``real[c]`` (T_c,) the slot of each packed token. Layers split the packed
    rows into chunks with ``Tensor.split(sizes)``: its backward is one concatenation, where
    slicing or gathering from all T rows would fill and add a zero gradient of all T rows per
    chunk and layer.
    """

    def __init__(self, chunks: list[dict], device: torch.device, rows_multiple_of: int = 1) -> None:
        self.shapes, self.gather, self.real, self.key_masks, self.sizes = [], [], [], [], []
        ids, types, positions = [], [], []
        offset = 0
        for chunk in chunks:
            mask = chunk["attention_mask"].to(device).bool()  # (n, L)
            n, length = mask.shape
            flat_mask = mask.reshape(-1)
            real = flat_mask.nonzero().squeeze(1)  # (T_c,)
            rank = torch.cumsum(flat_mask.long(), 0) - 1  # packed index of each real slot, within the chunk
            gather = torch.where(flat_mask, rank, torch.zeros_like(rank))  # (n*L,), within the chunk's rows
            self.shapes.append((n, length))
            self.sizes.append(len(real))
            self.gather.append(gather)
            self.real.append(real)
            self.key_masks.append(None if bool(mask.all()) else mask[:, None, None, :])  # (n, 1, 1, L): True = attend
            ids.append(chunk["input_ids"].to(device).reshape(-1)[real])
            tt = chunk.get("token_type_ids")
            types.append(tt.to(device).reshape(-1)[real] if tt is not None else torch.zeros_like(real))
            positions.append(torch.arange(length, device=device).expand(n, length).reshape(-1)[real])
            offset += len(real)
        extra = -offset % rows_multiple_of  # dummy rows so the (T, h) shapes repeat across steps (bf16 kernels)
        if extra:
            self.sizes.append(extra)
            filler = torch.zeros(extra, dtype=torch.long, device=device)
            ids, types, positions = ids + [filler], types + [filler], positions + [filler]
        self.input_ids = torch.cat(ids)  # (T,) T = real tokens + extra
        self.token_type_ids = torch.cat(types)  # (T,)
        self.position_ids = torch.cat(positions)  # (T,)
        self.num_tokens = offset  # real tokens
        self.extra = extra


def _attention(sa: nn.Module, x: Tensor, layout: PackedLayout) -> Tensor:
    """BertSelfAttention on packed tokens: (T, h) -> (T, h); attention per chunk, padded keys masked."""
    heads, d = sa.num_attention_heads, sa.attention_head_size
    q, k, v = sa.query(x), sa.key(x), sa.value(x)  # (T, h) each
    p = sa.dropout.p if sa.training else 0.0
    outs = []
    chunks = zip(layout.shapes, *(t.split(layout.sizes) for t in (q, k, v)), layout.gather, layout.real,
                 layout.key_masks)  # the dummy rows' piece, if any, is left out by zip
    for (n, length), qc, kc, vc, gather, real, key_mask in chunks:
        if key_mask is not None:  # padded layout of the chunk's rows; without padding it is a view
            qc, kc, vc = (t.index_select(0, gather) for t in (qc, kc, vc))
        qc, kc, vc = (t.view(n, length, heads, d).transpose(1, 2) for t in (qc, kc, vc))
        if p == 0.0:
            out = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=key_mask, scale=sa.scaling)
        else:
            out = eager_attention(qc, kc, vc, key_mask, sa.scaling, p, fast=isinstance(sa.dropout, FastDropout))
        out = out.transpose(1, 2).reshape(n * length, heads * d)  # (n*L, h)
        outs.append(out if key_mask is None else out.index_select(0, real))  # (T_c, h)
    if layout.extra:  # the dummy rows attend to nothing: zeros
        outs.append(x.new_zeros(layout.extra, heads * d))
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def packed_token_embeddings(bert: nn.Module, layout: PackedLayout) -> Tensor:
    """The BertModel's last hidden state for every packed token.  -> (T, hidden)"""
    emb = bert.embeddings
    x = emb.word_embeddings(layout.input_ids) + emb.token_type_embeddings(layout.token_type_ids)
    x = x + emb.position_embeddings(layout.position_ids)
    x = emb.dropout(emb.LayerNorm(x))  # (T, h)
    for layer in bert.encoder.layer:
        attention = layer.attention.output(_attention(layer.attention.self, x, layout), x)
        x = layer.output(layer.intermediate(attention), attention)
    return x


def encode_packed(model, chunks: list[dict], device: torch.device | None = None,
                  rows_multiple_of: int = 1) -> list[Tensor]:
    """Sentence embeddings of each chunk, through the packed forward.  -> [(n_c, D)] in chunk order.

    ``rows_multiple_of``: round the packed token rows up to a multiple of this (see :class:`PackedLayout`).

    Raises:
        ValueError: the model is not one :func:`supports_packed` accepts.
    """
    bert = _bert(model)
    if bert is None:
        raise ValueError("the packed forward needs a SentenceTransformer whose first module is a BertModel encoder")
    device = device or bert.device
    layout = PackedLayout(chunks, device, rows_multiple_of)
    tokens = packed_token_embeddings(bert, layout)  # (T, h)
    out = []
    for chunk, (n, length), chunk_tokens, gather in zip(chunks, layout.shapes, tokens.split(layout.sizes),
                                                        layout.gather):
        features = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in chunk.items()}
        if len(gather) != len(chunk_tokens):  # padded
            chunk_tokens = chunk_tokens.index_select(0, gather)
        features["token_embeddings"] = chunk_tokens.view(n, length, -1)  # (n, L, h)
        for module in list(model)[1:]:
            features = module(features)
        out.append(features["sentence_embedding"])
    return out
