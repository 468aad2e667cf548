"""The card's YAML header, as the Hub reads it (``huggingface_hub.ModelCardData``).

``library_name: sentence-transformers``, ``pipeline_tag: sentence-similarity``, tags (the
loss, the data size, mining), ``base_model`` (when it is a Hub id), ``datasets`` (the Hub
ids among the training and evaluation data; local files are described in the card body),
and ``model-index``: one result per metric of ``metrics.json["after"]``, its value unrounded.
"""

from __future__ import annotations

from typing import Any

from sbert_triplet.hub.card_data import CardFacts, base_model, data_sources, hub_id_of_data
from sbert_triplet.hub.card_sections import metric_info

BASE_TAGS = ("sentence-transformers", "sentence-similarity", "feature-extraction", "sbert-triplet")


def card_metadata(facts: CardFacts):
    """A ``huggingface_hub.ModelCardData`` for the run (``.to_yaml()`` gives the header)."""
    from huggingface_hub import ModelCardData

    sources = data_sources(facts)
    datasets = list(dict.fromkeys(s["hub_id"] for s in sources if s["hub_id"]))
    return ModelCardData(
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=tags(facts),
        base_model=base_model(facts)[0],
        datasets=datasets or None,
        model_name=facts.name,
        eval_results=eval_results(facts) or None,
    )


def tags(facts: CardFacts) -> list[str]:
    """Base tags, then ``loss:<name>``, ``dataset_size:<rows>`` and ``hard-negative-mining`` when they apply."""
    found = list(BASE_TAGS)
    loss = facts.config.get("loss", {}).get("loss")
    if loss:
        found.append(f"loss:{loss}")
    data = facts.metrics.get("data", {})
    if data.get("rows") is not None:
        found.append(f"dataset_size:{data['rows']}")
    if data.get("mining"):
        found.append("hard-negative-mining")
    return found


def eval_results(facts: CardFacts) -> list[Any]:
    """One ``huggingface_hub.EvalResult`` per metric after training (model-index form)."""
    from huggingface_hub import EvalResult

    evaluation = facts.config.get("eval", {})
    results = []
    for key, value in (facts.metrics.get("after") or {}).items():
        info = metric_info(key)
        source = _eval_source(info["task_type"], evaluation)
        dataset_type = hub_id_of_data(source) or info["evaluator"]
        split = evaluation.get("eval_split") if info["task_type"] == "information-retrieval" else None
        results.append(EvalResult(task_type=info["task_type"], task_name=info["task_name"],
                                  dataset_type=dataset_type, dataset_name=info["evaluator"], dataset_split=split,
                                  metric_type=info["metric"], metric_name=info["display"], metric_value=value))
    return results


def _eval_source(task_type: str, evaluation: dict[str, Any]) -> str | None:
    key = {"information-retrieval": "eval_ir", "semantic-similarity": "eval_sts", "triplet": "eval_triplets"}
    return evaluation.get(key.get(task_type, ""))

