"""The end of a training run: save the model, the run's records and its card, then push.

Order matters: the weights and configs are saved first, and a failure while writing the
card cannot undo them (it is logged and a minimal card is written instead).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sbert_triplet.training.io import write_json_atomic

logger = logging.getLogger(__name__)


def save_run(model, output_dir: str | Path, config, metrics: dict[str, Any], *, log=None,
             num_processes: int = 1, client: Any = None) -> None:
    """Save a trained run into ``output_dir`` and push it when ``config.push_to_hub`` is set.

    Writes the sentence-transformers folder (all modules, tokenizer, ``model.safetensors``:
    safetensors only), ``train_config.json`` (``config.to_dict()``), ``metrics.json``
    (``metrics`` plus ``metrics["environment"]``: hardware, library versions and where the
    base model was loaded from; added to the caller's dict too) and ``README.md``, the model card (:func:`write_card_or_fallback`).

    Args:
        model: the trained (unwrapped) ``SentenceTransformer``.
        output_dir: the run folder.
        config: the resolved ``TrainConfig``.
        metrics: ``{"before", "after", "train", "data"}`` as the loop built it.
        log: the run's ``JsonlLogger`` (card failures and the push are recorded there).
        num_processes: processes that trained (recorded as hardware).
        client: the Hub client for the push (default: ``huggingface_hub.HfApi``).

    Raises:
        ConfigError, PushError: the push was asked for and failed; the folder is saved.
    """
    from sbert_triplet.hub.card_data import environment_now

    out = Path(output_dir)
    model.save_pretrained(str(out), create_model_card=False, safe_serialization=True)
    try:
        metrics["environment"] = environment_now(num_processes, model)
    except Exception as err:  # a missing record must not stop the save
        metrics["environment"] = {"error": f"{type(err).__name__}: {err}"}
    write_json_atomic(out / "train_config.json", config.to_dict())
    write_json_atomic(out / "metrics.json", metrics)
    repo_id = getattr(config, "push_to_hub", None)
    write_card_or_fallback(out, repo_id, log)
    if repo_id:
        _push_after_training(out, repo_id, bool(getattr(config, "hub_private", False)), log, client)


def write_card_or_fallback(folder: Path, repo_id: str | None = None, log=None) -> Path:
    """Write the full card; on any error, log it and write :func:`~sbert_triplet.hub.card.minimal_card`."""
    from sbert_triplet.hub.card import minimal_card, write_card
    from sbert_triplet.training.io import write_text_atomic

    try:
        return write_card(folder, repo_id)
    except Exception as err:
        message = f"model card: {type(err).__name__}: {err}; wrote a minimal card instead"
        logger.warning(message)
        if log is not None:
            log.write({"event": "warning", "message": message})
        return write_text_atomic(folder / "README.md", minimal_card(repo_id or folder.resolve().name,
                                                                    type(err).__name__))


def _push_after_training(folder: Path, repo_id: str, private: bool, log, client) -> None:
    from sbert_triplet.hub.push import PushError, plan_push, push_folder

    try:
        result = push_folder(plan_push(folder, repo_id, private=private), client=client)
    except Exception as err:
        message = (f"the model is saved in {folder}, but the push to {repo_id} failed: {err}. Retry with "
                   f"`sbert-triplet push --model {folder} --repo-id {repo_id}`")
        if log is not None:
            log.write({"event": "push_failed", "repo_id": repo_id, "message": message})
        raise PushError(message) from None
    if log is not None:
        log.write({"event": "push", "repo_id": repo_id, "url": result["url"], "files": len(result["files"])})
