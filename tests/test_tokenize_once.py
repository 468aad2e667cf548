"""Each distinct text is tokenised once, when the loader is built, exactly as the encoder would.

The cache's rows equal ``SentenceTransformer.preprocess`` of each text (truncation
included), a padded set of rows equals ``preprocess`` of those texts (right and left
padding), and a multi-epoch training run calls the tokenizer once, never per step.
Also: training with length buckets gives the same losses as without (dropout off).
"""

import json

import pytest
import torch

from sbert_triplet.config import build_train_config
from sbert_triplet.training.bucketing import TokenCache
from sbert_triplet.training.loop import train

TEXTS = ["a cat", "the big red dog runs in the park", "a cat", "hello", "one two three four five six seven eight nine",
         "the old man and the young woman eat food at the beach"]


@pytest.mark.parametrize("side", ["right", "left"])
def test_cached_rows_equal_what_preprocess_gives(tiny_model, side):
    tiny_model.max_seq_length = 8  # the long texts are truncated
    tiny_model.tokenizer.padding_side = side
    cache = TokenCache.for_model(tiny_model, TEXTS)
    assert len(cache) == len(set(TEXTS))  # duplicates tokenised once
    for text in TEXTS:
        ref = tiny_model.preprocess([text])
        got = cache.pad(cache.ids([text]))
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert torch.equal(got[key], ref[key]), (text, key)
    ref = tiny_model.preprocess(TEXTS)  # padded to the longest, on the tokenizer's side
    got = cache.pad(cache.ids(TEXTS))
    assert set(got) == set(ref) and got["modality"] == ref["modality"]
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(got[key], ref[key]), key
    assert int(cache.lengths.max()) == 8


def test_an_uncached_text_is_a_key_error(tiny_model):
    cache = TokenCache.for_model(tiny_model, TEXTS)
    with pytest.raises(KeyError):
        cache.ids(["not in the data"])


def test_a_feature_that_is_not_per_token_is_refused():
    def tokenize(texts):
        n = len(texts)
        return {"input_ids": torch.ones(n, 3, dtype=torch.long), "attention_mask": torch.ones(n, 3),
                "pixel_values": torch.zeros(n, 3, 4)}

    with pytest.raises(ValueError, match="pixel_values"):
        TokenCache.build(tokenize, ["a", "b"])


ROWS = [{"anchor": f"a {w} cat sits" + " big" * k, "positive": f"the {w} cat sits in the {p} park" + " red" * (5 - k),
         "negative": f"the {p} dog" + " old" * (k % 3)}
        for k, (w, p) in enumerate([("red", "big"), ("blue", "small"), ("green", "old"), ("big", "new"),
                                    ("small", "red"), ("old", "blue"), ("young", "green"), ("happy", "sad")])]


def _config(tmp_path, name, **extra):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return build_train_config({"train": str(path), "output_dir": str(tmp_path / name), "batch_size": 4,
                               "log_steps": 1, "lr": 1e-3, "eval_before": False, **extra})


def test_training_tokenises_once_not_per_step_or_epoch(tmp_path, tiny_model):
    calls: list[int] = []
    original = tiny_model.preprocess

    def counting(texts, *args, **kwargs):
        calls.append(len(texts))
        return original(texts, *args, **kwargs)

    tiny_model.preprocess = counting
    metrics = train(_config(tmp_path, "out", loss="triplet", epochs=3), model=tiny_model, evaluators=[])
    assert metrics["train"]["steps"] == 6  # 2 batches x 3 epochs
    distinct = len({r[c] for r in ROWS for c in ("anchor", "positive", "negative")})
    assert calls == [distinct]


def _zero_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    config = model[0].auto_model.config
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("loss", ["mnr", "triplet"])
def test_training_with_buckets_gives_the_same_losses(tmp_path, tiny_model, loss):
    import copy

    _zero_dropout(tiny_model)
    runs = {}
    for buckets in (True, False):
        cfg = _config(tmp_path, f"b{buckets}", loss=loss, max_steps=4, length_buckets=buckets,
                      bucket_overhead_tokens=0)
        train(cfg, model=copy.deepcopy(tiny_model), evaluators=[])
        runs[buckets] = [r for r in _log(tmp_path / f"b{buckets}") if r["event"] == "train"]
    assert len(runs[True]) == len(runs[False]) == 4
    for a, b in zip(runs[True], runs[False]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["real_tokens"] == b["real_tokens"] and a["padded_tokens"] < b["padded_tokens"]
