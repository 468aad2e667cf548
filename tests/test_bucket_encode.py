"""Inference with length buckets and a token budget gives SentenceTransformer.encode's embeddings."""

import pytest
import torch

from sbert_triplet.training.encode import encode_texts

TEXTS = ["a cat", "the big red dog runs in the park", "a cat", "hello", "one two three four five six seven eight",
         "the old man and the young woman eat food at the beach", "music", "the child plays the guitar in the house"]


@pytest.mark.parametrize("batch_tokens", [None, 16, 1])
def test_fp32_equals_encode_in_input_order(tiny_model, batch_tokens):
    tiny_model.train()
    ref = tiny_model.encode(TEXTS, convert_to_tensor=True, batch_size=3)  # (N, D)
    tiny_model.train()
    got = encode_texts(tiny_model, TEXTS, batch_tokens=batch_tokens)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got - ref).abs().max().item() < 1e-5
    assert tiny_model.training  # mode restored
    assert torch.equal(got[0], got[2])  # a duplicate is the same row


def test_bf16_is_close_to_fp32(tiny_model):
    ref = encode_texts(tiny_model, TEXTS)
    got = encode_texts(tiny_model, TEXTS, bf16=True)
    assert got.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(got, ref).min().item() > 0.99


def test_bad_input_is_refused(tiny_model):
    with pytest.raises(ValueError, match="empty"):
        encode_texts(tiny_model, [])
    with pytest.raises(ValueError, match="batch_tokens"):
        encode_texts(tiny_model, TEXTS, batch_tokens=0)


def test_rounded_chunk_shapes_give_the_same_embeddings(tiny_model):
    ref = tiny_model.encode(TEXTS, convert_to_tensor=True, batch_size=3)  # (N, D)
    got = encode_texts(tiny_model, TEXTS, batch_tokens=40, pad_to_multiple_of=8, rows_multiple_of=2)
    assert (got - ref).abs().max().item() < 1e-5


def test_shape_rounding_is_on_for_bf16_and_accelerators_only():
    from sbert_triplet.training.bucketing import default_shape_multiple

    assert default_shape_multiple("cpu", bf16=False) == 1
    assert default_shape_multiple("cpu", bf16=True) == default_shape_multiple("cuda", bf16=False) == 8
