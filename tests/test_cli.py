"""The CLI end to end on the tiny model and a few rows (in-process, with typer's runner)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sbert_triplet.cli import app, main

runner = CliRunner()

ROWS = [
    {"id": i, "negative": f"the {n} dog runs", "anchor": f"a {a} cat sits", "positive": f"the {a} cat sits"}
    for i, (a, n) in enumerate([("red", "blue"), ("big", "small"), ("old", "young"), ("happy", "sad"),
                                ("fast", "slow"), ("good", "bad"), ("new", "old"), ("blue", "green")])
]


@pytest.fixture
def triplet_file(tmp_path):
    path = tmp_path / "triplets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "train" in result.output and "evaluate" in result.output


def test_train_then_load_then_evaluate(tmp_path, tiny_model_dir, triplet_file, shared_data):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "model"
    result = runner.invoke(app, [
        "train", "--model", str(tiny_model_dir), "--train", str(triplet_file), "--loss", "triplet",
        "--max-steps", "2", "--batch-size", "4", "--lr", "1e-3", "--output-dir", str(out),
        "--eval-triplets", str(triplet_file),
    ])
    assert result.exit_code == 0, result.output
    assert (out / "metrics.json").is_file() and (out / "train_log.jsonl").is_file()
    model = SentenceTransformer(str(out), device="cpu")
    assert model.encode(["a red cat sits"]).shape == (1, 32)

    result = runner.invoke(app, ["evaluate", "--model", str(out), "--triplets", str(triplet_file),
                                 "--sts", str(shared_data / "sick" / "SICK_trial.txt")])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"triplets", "SICK_trial"}
    assert 0.0 <= metrics["triplets"]["accuracy"] <= 1.0
    assert -1.0 <= metrics["SICK_trial"]["spearman_cosine"] <= 1.0


def test_yaml_config_and_flag_override(tmp_path, tiny_model_dir, triplet_file):
    config = tmp_path / "run.yaml"
    config.write_text(f"loss: mnr\nbatch_size: 4\nmax_steps: 1\ntrain: {triplet_file}\n")
    out = tmp_path / "m"
    result = runner.invoke(app, ["train", "--config", str(config), "--model", str(tiny_model_dir),
                                 "--max-steps", "2", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["optim"]["max_steps"] == 2 and saved["optim"]["batch_size"] == 4 and saved["loss"]["loss"] == "mnr"


def test_user_errors_print_one_line_and_exit_2(tmp_path, monkeypatch, capsys, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"anchor": "a cat", "positive": ""}) + "\n")
    monkeypatch.setattr(sys, "argv", ["sbert-triplet", "train", "--model", str(tiny_model_dir), "--train", str(bad),
                                      "--loss", "mnr", "--output-dir", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.jsonl" in err and "positive" in err


def test_help_starts_fast_without_heavy_imports():
    code = "import sys; from sbert_triplet import cli; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_gradient_cache_trains_via_the_cli(tmp_path, tiny_model_dir, triplet_file):
    out = tmp_path / "gc"
    result = runner.invoke(app, [
        "train", "--model", str(tiny_model_dir), "--train", str(triplet_file), "--loss", "mnr",
        "--batch-size", "8", "--mini-batch-size", "2", "--max-steps", "2", "--temperature", "0.05", "--log-steps", "1",
        "--output-dir", str(out),
    ])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["optim"]["mini_batch_size"] == 2 and saved["loss"]["scale"] == 20.0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["grad_cache"] is True and log[-1]["steps"] == 2
    assert [r["negatives_per_anchor"] for r in log if r["event"] == "train"] == [15.0, 15.0]


def test_label_loss_via_the_cli(tmp_path, tiny_model_dir):
    rows = [{"text": f"the {adj} {noun}", "label": noun} for noun in ("cat", "dog", "man") for adj in ("red", "big")]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "bh"
    result = runner.invoke(app, [
        "train", "--model", str(tiny_model_dir), "--train", str(path), "--loss", "batch-hard",
        "--distance", "cosine", "--margin", "0.3", "--samples-per-label", "2", "--batch-size", "4",
        "--max-steps", "2", "--output-dir", str(out),
    ])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["loss"]["sampler"] == "pk" and saved["loss"]["distance"] == "cosine"


def test_option_the_loss_does_not_take_exits_2(tmp_path, monkeypatch, capsys, tiny_model_dir, triplet_file):
    monkeypatch.setattr(sys, "argv", ["sbert-triplet", "train", "--model", str(tiny_model_dir), "--train",
                                      str(triplet_file), "--loss", "mnr", "--swap", "--output-dir", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --swap does not apply to the mnr loss") and "Loading" not in err  # before the model load
