"""Samplers for exact resume: batches are a function of (seed, epoch); a pass can start at batch n."""

import pytest

from sbert_triplet.data.samplers import NoDuplicatesBatchSampler, PKBatchSampler, RandomBatchSampler
from sbert_triplet.errors import ConfigError


def _samplers():
    rows = [(f"a{i % 11}", f"p{i}") for i in range(40)]
    return [RandomBatchSampler(40, 4, seed=42, drop_last=True), NoDuplicatesBatchSampler(rows, 4, seed=42),
            PKBatchSampler([i % 5 for i in range(40)], 4, samples_per_label=2, seed=42)]


def test_random_batch_sampler_each_row_once_per_epoch_and_deterministic():
    sampler = RandomBatchSampler(10, 4, seed=42)
    epoch0 = list(sampler)
    assert [len(b) for b in epoch0] == [4, 4, 2] and sorted(i for b in epoch0 for i in b) == list(range(10))
    assert list(RandomBatchSampler(10, 4, seed=42)) == epoch0
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    assert [len(b) for b in RandomBatchSampler(10, 4, seed=42, drop_last=True)] == [4, 4]


@pytest.mark.parametrize("sampler", _samplers(), ids=["random", "no-duplicates", "pk"])
def test_resume_at_skips_the_first_batches_of_one_pass_only(sampler):
    sampler.set_epoch(3)
    whole = list(sampler)
    sampler.resume_at(2)
    assert sampler.state_dict() == {"seed": 42, "epoch": 3, "start": 2}
    assert list(sampler) == whole[2:]
    assert list(sampler) == whole  # the next pass is whole again


@pytest.mark.parametrize("sampler", _samplers(), ids=["random", "no-duplicates", "pk"])
def test_state_dict_round_trip_into_a_fresh_sampler(sampler):
    sampler.set_epoch(1)
    sampler.resume_at(3)
    state = sampler.state_dict()
    fresh = _samplers()[[type(s) for s in _samplers()].index(type(sampler))]
    fresh.load_state_dict(state)
    assert list(fresh) == list(sampler)


def test_state_from_another_seed_is_refused():
    with pytest.raises(ConfigError, match="resume with --seed 7"):
        RandomBatchSampler(8, 4, seed=42).load_state_dict({"seed": 7, "epoch": 0, "start": 0})
    with pytest.raises(ValueError, match=">= 0"):
        RandomBatchSampler(8, 4).resume_at(-1)


def test_accelerate_shards_do_not_forward_set_epoch_and_skipping_p_times_n_resumes_each_process():
    from accelerate.data_loader import BatchSamplerShard

    sampler = RandomBatchSampler(32, 2, seed=42, drop_last=True)  # 16 global batches
    shards = [BatchSamplerShard(sampler, num_processes=2, process_index=r) for r in range(2)]
    assert not hasattr(shards[0], "set_epoch") and not hasattr(shards[0], "sampler")  # why the loop calls it
    whole = [list(shard) for shard in shards]
    resumed = []
    for shard in shards:
        sampler.resume_at(2 * 3)  # 3 batches taken on each of 2 processes
        resumed.append(list(shard))
    assert resumed == [w[3:] for w in whole]
