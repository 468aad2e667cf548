"""Save -> load round trips of a trained run folder: a plain SentenceTransformer(DIR) and
transformers.AutoModel give the in-memory model's embeddings; pooling and Normalize survive;
a missing (or empty) Normalize folder, as after a git clone, still loads; local Parquet data
with large_string columns gets a card."""

import copy
import json
import shutil

import pytest
import torch
from datasets import Dataset, Features, Value

from sbert_triplet.config import build_train_config
from sbert_triplet.training.loop import train

TEXTS = ["a red cat sits", "the dog runs in the park", "a young boy plays the guitar", "hello world"]
WORDS = ("red", "blue", "green", "big", "small", "old", "young", "happy")
PAIRS = {"anchor": [f"a {w} cat sits" for w in WORDS], "positive": [f"the {w} cat sits" for w in WORDS]}


def _train(tmp_path, model, train_dataset=None, **extra):
    values = {"train": "in-memory", "output_dir": str(tmp_path / "out"), "batch_size": 4, "max_steps": 2,
              "lr": 1e-3, **extra}
    dataset = Dataset.from_dict(PAIRS) if train_dataset is None and values["train"] == "in-memory" else train_dataset
    train(build_train_config(values), model=model, train_dataset=dataset, evaluators=[])
    model.eval()
    return tmp_path / "out"


def _hf_embeddings(folder, pooling: str, normalize: bool, max_length: int) -> torch.Tensor:
    """The transformer part loaded with transformers.AutoModel, pooled by hand."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state  # (N, T, D)
    if pooling == "cls":
        pooled = tokens[:, 0]  # (N, D)
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)  # (N, T, 1)
        pooled = (tokens * mask).sum(1) / mask.sum(1)  # (N, D)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def _pooling_mode(model) -> str:
    return model[1].get_config_dict()["pooling_mode"]


def test_round_trip_sentence_transformer_and_automodel(tmp_path, tiny_model):
    from sentence_transformers import SentenceTransformer

    out = _train(tmp_path, tiny_model)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"model.safetensors", "modules.json", "1_Pooling/config.json", "tokenizer.json", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)  # safetensors only
    expected = tiny_model.encode(TEXTS, convert_to_tensor=True)  # (4, 32)
    reloaded = SentenceTransformer(str(out), device="cpu")
    got = reloaded.encode(TEXTS, convert_to_tensor=True)  # (4, 32)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-6)
    assert _pooling_mode(reloaded) == _pooling_mode(tiny_model) == "mean"
    assert [type(m).__name__ for m in reloaded] == ["Transformer", "Pooling", "Normalize"]
    by_hand = _hf_embeddings(out, "mean", normalize=True, max_length=reloaded.max_seq_length)
    assert torch.allclose(by_hand, expected, atol=1e-6)


@pytest.mark.parametrize("normalize_folder", ["missing", "empty"])
def test_round_trip_without_the_normalize_folder(tmp_path, tiny_model, normalize_folder):
    """git does not keep empty folders: a clone may lack 2_Normalize (older versions left it empty)."""
    from sentence_transformers import SentenceTransformer

    out = _train(tmp_path, tiny_model)
    expected = tiny_model.encode(TEXTS, convert_to_tensor=True)
    shutil.rmtree(out / "2_Normalize")
    if normalize_folder == "empty":
        (out / "2_Normalize").mkdir()
    reloaded = SentenceTransformer(str(out), device="cpu")
    assert type(reloaded[-1]).__name__ == "Normalize"
    got = reloaded.encode(TEXTS, convert_to_tensor=True)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-6)


def test_cls_pooling_stays_cls(tmp_path):
    from sentence_transformers import SentenceTransformer

    from conftest import build_tiny_model_dir

    base = SentenceTransformer(str(build_tiny_model_dir(tmp_path / "cls", pooling_mode="cls", normalize=False)),
                               device="cpu")
    out = _train(tmp_path, base)
    expected = base.encode(TEXTS, convert_to_tensor=True)
    reloaded = SentenceTransformer(str(out), device="cpu")
    assert _pooling_mode(reloaded) == "cls" and [type(m).__name__ for m in reloaded] == ["Transformer", "Pooling"]
    assert torch.allclose(reloaded.encode(TEXTS, convert_to_tensor=True), expected, atol=1e-6)
    assert torch.allclose(_hf_embeddings(out, "cls", False, reloaded.max_seq_length), expected, atol=1e-6)
    assert "| Pooling | cls |" in (out / "README.md").read_text()


def test_local_parquet_with_large_string_columns_gets_a_card(tmp_path, tiny_model):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pairs.parquet"
    table = pa.table({name: pa.array(texts, type=pa.large_string()) for name, texts in PAIRS.items()})
    pq.write_table(table, path)
    out = _train(tmp_path, tiny_model, train=str(path))
    card = (out / "README.md").read_text()
    assert f"| train | local file `{path}` | 8 |" in card and "8 rows read, 0 dropped" in card
    assert "could not be generated" not in card


def test_in_memory_large_string_dataset_gets_a_card(tmp_path, tiny_model):
    features = Features({"anchor": Value("large_string"), "positive": Value("large_string")})
    dataset = Dataset.from_dict(PAIRS, features=features)
    out = _train(tmp_path, tiny_model, train_dataset=dataset)
    card = (out / "README.md").read_text()
    assert "| train | in-memory dataset | 8 |" in card and "could not be generated" not in card
    assert json.loads((out / "metrics.json").read_text())["data"]["rows"] == 8


@pytest.mark.real
def test_round_trip_minilm(tmp_path, minilm_path):
    """all-MiniLM-L6-v2, 2 steps: the saved folder reproduces the trained model and its card names the base."""
    from huggingface_hub import ModelCard
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path, device="cpu")
    in_memory = copy.deepcopy(model)
    out = _train(tmp_path, in_memory, max_seq_length=32)
    expected = in_memory.encode(TEXTS, convert_to_tensor=True)  # (4, 384)
    got = SentenceTransformer(str(out), device="cpu").encode(TEXTS, convert_to_tensor=True)  # (4, 384)
    assert got.shape == (4, 384) and torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, model.encode(TEXTS, convert_to_tensor=True), atol=1e-4)  # it did train
    assert torch.allclose(_hf_embeddings(out, "mean", True, 32), expected, atol=1e-6)
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert "| Output | 384 dimensions, unit length" in card.text
