"""Publishing: the model card, the run folder's save, and the push to the Hugging Face Hub.

- :func:`save_run`: the end of training: model (safetensors), ``metrics.json``,
  ``train_config.json``, ``README.md`` (the card, or a minimal one if it fails), push.
- :func:`write_card` / :func:`render_card`: the card of a saved run folder, from its files.
- :func:`plan_push` / :func:`format_plan` / :func:`push_folder`: what is uploaded, the
  dry-run text, the upload (the Hub client injectable).
"""

from __future__ import annotations

from sbert_triplet.hub.card import minimal_card, render_card, write_card
from sbert_triplet.hub.card_data import CardFacts, collect_card_facts
from sbert_triplet.hub.push import PushError, PushPlan, format_plan, plan_push, push_folder, upload_files
from sbert_triplet.hub.save import save_run

__all__ = [
    "CardFacts",
    "PushError",
    "PushPlan",
    "collect_card_facts",
    "format_plan",
    "minimal_card",
    "plan_push",
    "push_folder",
    "render_card",
    "save_run",
    "upload_files",
    "write_card",
]
