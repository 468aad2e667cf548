"""Pushing to the Hub with an injected fake client: create-repo, then one commit with exactly
the files of --dry-run; the token is used but appears in no file and no log line."""

import json
import logging
import shutil
from types import SimpleNamespace

import pytest
from datasets import Dataset
from typer.testing import CliRunner

from sbert_triplet.cli import app
from sbert_triplet.config import build_train_config
from sbert_triplet.errors import ConfigError
from sbert_triplet.hub import push as push_module
from sbert_triplet.hub.push import PushError, format_plan, plan_push, push_folder, upload_files
from sbert_triplet.training.loop import train

SECRET = "hf_TESTtokenNEVERshown0123456789abcdef"
WORDS = ("red", "blue", "green", "big", "small", "old", "young", "happy")
PAIRS = {"anchor": [f"a {w} cat sits" for w in WORDS], "positive": [f"the {w} cat sits" for w in WORDS]}


class FakeHub:
    """Records the calls an ``HfApi`` would get; keeps the uploaded bytes."""

    def __init__(self, fail: Exception | None = None):
        self.calls: list[tuple] = []
        self.uploaded: dict[str, bytes] = {}
        self.fail = fail

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        if self.fail:
            raise self.fail
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        operations = list(operations)
        self.calls.append(("create_commit", repo_id, kwargs))
        for op in operations:
            with open(op.path_or_fileobj, "rb") as f:
                self.uploaded[op.path_in_repo] = f.read()
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/abc")


def _trained_folder(tmp_path, model, **extra):
    values = {"train": "in-memory", "output_dir": str(tmp_path / "run"), "batch_size": 4, "max_steps": 2,
              "log_steps": 1, **extra}
    train(build_train_config(values), model=model, train_dataset=Dataset.from_dict(PAIRS), evaluators=[])
    return tmp_path / "run"


def _no_token(monkeypatch, tmp_path):
    """Neither the environment nor a login file has a token."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token-file"))


def _files_containing(folder, needle: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def _dry_run_files(output: str) -> list[str]:
    start = output.index("files (")
    lines = output[start:].splitlines()[1:]
    return [line.split()[0] for line in lines[:lines.index("")]]


def test_train_push_to_hub_uploads_the_run_and_never_leaks_the_token(tmp_path, tiny_model, monkeypatch, caplog,
                                                                      capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub = FakeHub()
    monkeypatch.setattr(push_module, "make_client", lambda: hub)
    caplog.set_level(logging.DEBUG)
    out = _trained_folder(tmp_path, tiny_model, push_to_hub="me/tiny-mnr", hub_private=True)
    assert [c[0] for c in hub.calls] == ["create_repo", "create_commit"]
    assert hub.calls[0][1] == "me/tiny-mnr" and hub.calls[0][2]["private"] is True
    assert all(call[2]["token"] == SECRET for call in hub.calls)  # the token is used ...
    assert sorted(hub.uploaded) == upload_files(out)
    assert {"README.md", "model.safetensors", "metrics.json", "train_config.json", "2_Normalize/config.json"} \
        <= set(hub.uploaded)
    assert hub.uploaded["README.md"] == (out / "README.md").read_bytes()
    assert 'SentenceTransformer("me/tiny-mnr")' in (out / "README.md").read_text()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any(r["event"] == "push" and r["repo_id"] == "me/tiny-mnr" for r in log)
    captured = capsys.readouterr()
    # ... and shown nowhere: no file of the folder, no log record, no output
    assert _files_containing(tmp_path, SECRET) == []
    assert SECRET not in caplog.text and SECRET not in captured.out + captured.err


def test_dry_run_prints_exactly_what_push_uploads(tmp_path, tiny_model, monkeypatch):
    out = _trained_folder(tmp_path, tiny_model)
    (out / "pytorch_model.bin").write_bytes(b"pickle")  # left out: safetensors only
    (out / ".hidden").write_text("x")
    (out / "mining").mkdir()
    (out / "mining" / "hard_negatives.jsonl").write_text("{}\n")  # not a module folder
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub = FakeHub()
    monkeypatch.setattr(push_module, "make_client", lambda: hub)
    runner = CliRunner()
    dry = runner.invoke(app, ["push", "--model", str(out), "--repo-id", "me/tiny", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    listed = _dry_run_files(dry.output)
    assert hub.calls == [] and "nothing was uploaded" in dry.output
    assert (out / "README.md").read_text() in dry.output
    assert "pytorch_model.bin" not in listed and ".hidden" not in listed and "mining/hard_negatives.jsonl" not in listed
    result = runner.invoke(app, ["push", "--model", str(out), "--repo-id", "me/tiny", "--revision", "v1",
                                 "--commit-message", "first"])
    assert result.exit_code == 0, result.output
    assert [c[0] for c in hub.calls] == ["create_repo", "create_branch", "create_commit"]
    assert hub.calls[1][2]["branch"] == "v1" and hub.calls[2][2]["revision"] == "v1"
    assert hub.calls[2][2]["commit_message"] == "first"
    assert sorted(hub.uploaded) == listed
    assert json.loads(result.output)["files"] == listed
    assert SECRET not in dry.output + result.output and _files_containing(tmp_path, SECRET) == []


def test_push_of_a_folder_without_card_writes_it_first(tmp_path, tiny_model_dir):
    folder = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").unlink()
    plan = plan_push(folder, "me/plain")
    assert plan.card_is_new and "README.md" in plan.files and not (folder / "README.md").exists()
    assert "generated now" in format_plan(plan)  # the dry run writes nothing
    hub = FakeHub()
    result = push_folder(plan, client=hub)
    assert (folder / "README.md").read_text() == plan.card and hub.uploaded["README.md"] == plan.card.encode()
    assert result["files"] == sorted(hub.uploaded) == list(plan.files)
    assert result["url"].endswith("/commit/abc")


def test_push_errors_name_the_fix(tmp_path, tiny_model_dir, monkeypatch):
    with pytest.raises(ConfigError, match="not a Hub repo id"):
        plan_push(tiny_model_dir, "me/with/slashes")
    with pytest.raises(ConfigError, match="modules.json"):
        plan_push(tmp_path, "me/x")
    plan = plan_push(tiny_model_dir, "me/x")
    _no_token(monkeypatch, tmp_path)
    monkeypatch.setattr(push_module, "make_client", lambda: pytest.fail("no client without a token"))
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        push_folder(plan)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with pytest.raises(PushError, match="403 Forbidden") as err:
        push_folder(plan, client=FakeHub(fail=RuntimeError(f"403 Forbidden for token {SECRET}")))
    assert SECRET not in str(err.value)


def test_train_with_push_fails_early_without_a_token(tmp_path, monkeypatch):
    _no_token(monkeypatch, tmp_path)
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"anchor": "a cat", "positive": "the cat"}) + "\n")
    result = CliRunner().invoke(app, ["train", "--train", str(data), "--output-dir", str(tmp_path / "o"),
                                      "--push-to-hub", "me/x"])
    assert isinstance(result.exception, ConfigError) and "HF_TOKEN" in str(result.exception)
    assert not (tmp_path / "o").exists()
