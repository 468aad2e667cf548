"""Batch samplers: no duplicate texts per batch; P labels x K samples per batch."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from sbert_triplet.data.samplers import NoDuplicatesBatchSampler, PKBatchSampler
from sbert_triplet.errors import ConfigError


def _repeated_rows(n, seed=0, vocab=(40, 80, 300)):
    """(anchor, positive, negative) rows drawn from small vocabularies: many repeated texts."""
    rng = random.Random(seed)
    return [(f"a{rng.randrange(vocab[0])}", f"p{rng.randrange(vocab[1])}", f"n{rng.randrange(vocab[2])}")
            for _ in range(n)]


def _check_no_duplicates(sampler, rows, batch_size):
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        texts = [t for row in batch for t in set(rows[row])]
        assert len(texts) == len(set(texts)), "a text occurs twice in one batch"
        assert 1 <= len(batch) <= batch_size
    num_full = sum(len(b) == batch_size for b in batches)
    assert all(len(b) == batch_size for b in batches[:num_full]), "full batches come first"
    return batches


# ----------------------------------------------------------------------------- no duplicates


def test_no_duplicates_repeated_texts_each_row_once():
    rows = _repeated_rows(600)
    sampler = NoDuplicatesBatchSampler(rows, batch_size=16, seed=1)
    batches = _check_no_duplicates(sampler, rows, 16)
    assert sorted(i for b in batches for i in b) == list(range(600))
    full = [b for b in batches if len(b) == 16]
    assert len(full) >= 30 and batches[: len(full)] == full  # full batches first, smaller ones at the end


def test_no_duplicates_cross_column_text_counts():
    rows = [("x", "y"), ("y", "z"), ("z", "w"), ("u", "v")]  # row 0's positive is row 1's anchor
    for epoch in range(5):
        sampler = NoDuplicatesBatchSampler(rows, batch_size=4)
        sampler.set_epoch(epoch)
        for batch in sampler:
            assert not ({0, 1} <= set(batch) or {1, 2} <= set(batch))


def test_no_duplicates_deterministic_per_seed_and_epoch():
    rows = _repeated_rows(300)
    first = list(NoDuplicatesBatchSampler(rows, 8, seed=5))
    assert list(NoDuplicatesBatchSampler(rows, 8, seed=5)) == first
    assert list(NoDuplicatesBatchSampler(rows, 8, seed=6)) != first
    sampler = NoDuplicatesBatchSampler(rows, 8, seed=5)
    sampler.set_epoch(1)
    second = _check_no_duplicates(sampler, rows, 8)
    assert second != first
    assert sorted(i for b in second for i in b) == list(range(300))
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_no_duplicates_without_repeats_is_plain_batching():
    rows = [(f"a{i}", f"p{i}") for i in range(103)]
    batches = list(NoDuplicatesBatchSampler(rows, 10, seed=0))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert len(list(NoDuplicatesBatchSampler(rows, 10, drop_last=True))) == 10


def test_no_duplicates_one_text_everywhere_gives_singletons():
    rows = [("same", f"p{i}") for i in range(7)]
    batches = list(NoDuplicatesBatchSampler(rows, 4))
    assert sorted(map(len, batches)) == [1] * 7
    assert list(NoDuplicatesBatchSampler(rows, 4, drop_last=True)) == []


def test_no_duplicates_heavy_text_spreads_one_per_batch():
    rows = [("hot" if i % 3 == 0 else f"a{i}", f"p{i}") for i in range(300)]  # 100 rows share "hot"
    batches = list(NoDuplicatesBatchSampler(rows, 10, seed=2))
    assert all(sum(rows[i][0] == "hot" for i in b) <= 1 for b in batches)
    assert len(batches) == 100  # 100 "hot" rows need 100 batches; the other 200 rows fill 20 of them
    assert sum(len(b) == 10 for b in batches) >= 18


def test_no_duplicates_drop_last_keeps_only_full_batches():
    rows = _repeated_rows(500, seed=3)
    batches = list(NoDuplicatesBatchSampler(rows, 32, seed=0, drop_last=True))
    assert batches and all(len(b) == 32 for b in batches)
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used))


def test_no_duplicates_200k_rows_single_pass():
    rows = _repeated_rows(200_000, seed=4, vocab=(50_000, 80_000, 150_000))
    sampler = NoDuplicatesBatchSampler(rows, batch_size=64, seed=0)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(200_000))
    for batch in batches[::97]:  # spot-check
        texts = [t for i in batch for t in rows[i]]
        assert len(texts) == len(set(texts))
    assert sum(len(b) < 64 for b in batches) <= 3


def test_no_duplicates_work_per_row_is_bounded(monkeypatch):
    """One text in every row (quadratic for a rescan-the-deferred-rows sampler): N singleton batches."""
    from sbert_triplet.data import samplers

    calls = Counter()
    original = samplers._Packer.first_open

    def counted(self, start):
        calls["first_open"] += 1
        return original(self, start)

    monkeypatch.setattr(samplers._Packer, "first_open", counted)
    n = 20_000
    batches = NoDuplicatesBatchSampler([("same", f"p{i}") for i in range(n)], batch_size=32).batches()
    assert len(batches) == n and all(len(b) == 1 for b in batches)
    assert calls["first_open"] <= (samplers._Packer.PROBES + 2) * n


def test_no_duplicates_works_as_dataloader_batch_sampler():
    rows = _repeated_rows(50)
    loader = DataLoader(list(range(50)), batch_sampler=NoDuplicatesBatchSampler(rows, 8))
    seen = torch.cat(list(loader)).tolist()
    assert sorted(seen) == list(range(50))


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_no_duplicates_bad_batch_size(batch_size):
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        NoDuplicatesBatchSampler([("a",)], batch_size)


# ----------------------------------------------------------------------------- P x K


def _check_pk(batches, labels, p, k):
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used)), "a row is used twice in one epoch"
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert len(batch) == p * k and len(counts) == p and set(counts.values()) == {k}


def test_pk_two_labels():
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    for seed in range(3):
        for epoch in range(3):
            sampler = PKBatchSampler(labels, batch_size=4, samples_per_label=2, seed=seed)
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler) == 2
            _check_pk(batches, labels, p=2, k=2)
            assert sorted(i for b in batches for i in b) == list(range(8))


def test_pk_uneven_labels_and_leftovers():
    rng = random.Random(0)
    labels = [rng.choice("abcdefghij") for _ in range(300)] + ["z"] * 200 + ["solo"]
    sampler = PKBatchSampler(labels, batch_size=12, samples_per_label=3, seed=0)
    batches = list(sampler)
    _check_pk(batches, labels, p=4, k=3)
    counts = Counter(labels)
    chunks = {label: n // 3 for label, n in counts.items()}
    # "z" (66 chunks) can only fill one slot per batch; every other full chunk is used
    assert len(batches) == sampler.num_batches
    assert sum(min(c, len(batches)) for c in chunks.values()) >= 4 * len(batches)
    assert sum(min(c, len(batches) + 1) for c in chunks.values()) < 4 * (len(batches) + 1)
    assert not any(labels[i] == "solo" for b in batches for i in b)
    sampler.set_epoch(1)
    assert list(sampler) != batches and len(list(sampler)) == len(batches)


def test_pk_deterministic():
    labels = [i % 5 for i in range(100)]
    first = list(PKBatchSampler(labels, 10, 2, seed=3))
    assert list(PKBatchSampler(labels, 10, 2, seed=3)) == first
    assert list(PKBatchSampler(labels, 10, 2, seed=4)) != first


@pytest.mark.parametrize(
    "labels,batch_size,k,match",
    [
        ([0, 0, 0, 1], 4, 2, r"only 1 of 2 labels have >= 2 rows"),
        ([0, 1, 2, 3], 4, 2, r"only 0 of 4 labels"),
        ([0, 0, 1, 1, 2, 2], 8, 2, r"P=4 labels.*only 3 of 3"),
        ([0, 0, 1, 1], 2, 2, r"at least 2\*K=4"),
        ([0, 0, 1, 1], 5, 2, r"multiple of samples_per_label K=2"),
        ([0, 0, 1, 1], 4, 1, r"samples_per_label \(K\) must be an integer >= 2"),
    ],
)
def test_pk_impossible_settings_say_why(labels, batch_size, k, match):
    with pytest.raises(ValueError, match=match):
        PKBatchSampler(labels, batch_size=batch_size, samples_per_label=k)
