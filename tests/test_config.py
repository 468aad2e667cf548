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
