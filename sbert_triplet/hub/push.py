"""Upload a run folder to the Hugging Face Hub, with the Hub client injectable.

What is uploaded (:func:`upload_files`): the folder's top-level files (the model's configs,
``model.safetensors``, tokenizer, ``README.md``, ``metrics.json``, ``train_config.json``,
``train_log.jsonl``) and every file of the module folders ``modules.json`` names
(``1_Pooling/``, ...). Left out: hidden files, pickled weights (``*.bin``, ``*.pt``, ...:
safetensors only) and other subfolders (``mining/``, checkpoints). A folder without
``README.md`` gets its card generated (and written into it before the upload).

The token comes from ``huggingface_hub.get_token()``: the ``HF_TOKEN`` environment variable
or the user's ``hf auth login``. It is handed to the client call by call and never printed,
logged or written. ``--dry-run`` (:func:`format_plan`) prints the plan: exactly the files
and the card :func:`push_folder` uploads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbert_triplet.errors import ConfigError, SbertTripletError

logger = logging.getLogger(__name__)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class PushError(SbertTripletError):
    """The Hub refused or failed an upload (the message says what to check; never the token)."""


@dataclass(frozen=True)
class PushPlan:
    """What a push does: create ``repo_id`` (if missing) and commit ``files`` from ``folder``.

    ``card`` is the ``README.md`` uploaded; ``card_is_new`` when the folder had none and it
    is written there first.
    """

    folder: Path
    repo_id: str
    files: tuple[str, ...]
    card: str
    card_is_new: bool
    private: bool = False
    revision: str | None = None
    commit_message: str = ""


def make_client():
    """The real Hub client (``huggingface_hub.HfApi``); tests inject a fake instead."""
    from huggingface_hub import HfApi

    return HfApi()


def require_token() -> str:
    """The Hub token (``HF_TOKEN`` or the ``hf auth login`` file); never printed.

    Raises:
        ConfigError: there is none.
    """
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise ConfigError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again")
    return token


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` when it is a valid Hub repo id (``name`` or ``user/name``).

    Raises:
        ConfigError: an invalid id, with the rule.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(f"--repo-id {repo_id!r} is not a Hub repo id ({err}); use USER/NAME") from None
    return repo_id


def upload_files(folder: str | Path) -> list[str]:
    """The relative paths (``/``-separated, sorted) :func:`push_folder` uploads from ``folder``.

    Raises:
        ConfigError: ``folder`` has no ``modules.json`` (not a sentence-transformers folder).
    """
    import json

    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        raise ConfigError(f"{folder} is not a sentence-transformers folder (no modules.json): pass --model with "
                          "the output folder of `sbert-triplet train`")
    module_dirs = {m.get("path", "") for m in json.loads((folder / "modules.json").read_text())} - {""}
    found = [p.name for p in folder.iterdir() if _uploadable(p)]
    for name in sorted(module_dirs):
        sub = folder / name
        if sub.is_dir():
            found += [p.relative_to(folder).as_posix() for p in sub.rglob("*")
                      if _uploadable(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found)


def _uploadable(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and not path.name.startswith(".") \
        and path.suffix.lower() not in PICKLE_SUFFIXES


def plan_push(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
              commit_message: str | None = None) -> PushPlan:
    """The plan of a push, read from the folder; changes nothing.

    Raises:
        ConfigError: an invalid repo id, or ``folder`` is not a sentence-transformers folder.
    """
    from sbert_triplet.hub.card import render_card
    from sbert_triplet.hub.card_data import collect_card_facts

    folder = Path(folder)
    check_repo_id(repo_id)
    files = upload_files(folder)
    readme = folder / "README.md"
    card_is_new = not readme.is_file()
    card = render_card(collect_card_facts(folder, repo_id)) if card_is_new else readme.read_text(encoding="utf-8")
    if card_is_new:
        files = sorted([*files, "README.md"])
    message = commit_message or f"Upload {folder.resolve().name} with sbert-triplet"
    return PushPlan(folder, repo_id, tuple(files), card, card_is_new, private, revision, message)


def format_plan(plan: PushPlan) -> str:
    """The dry-run text: the repo, the files with their sizes, then the card."""
    sizes = {name: (plan.folder / name).stat().st_size if (plan.folder / name).is_file() else len(plan.card.encode())
             for name in plan.files}
    lines = [f"dry run: nothing was uploaded. A push would create {plan.repo_id} if missing "
             f"(private: {'yes' if plan.private else 'no'}) and commit to revision {plan.revision or 'main'}:",
             f"commit message: {plan.commit_message}", f"files ({len(plan.files)}, {sum(sizes.values())} bytes):"]
    lines += [f"  {name}  ({sizes[name]} bytes)" for name in plan.files]
    where = "generated now; written into the folder before upload" if plan.card_is_new else "as in the folder"
    lines += ["", f"README.md ({where}):", plan.card]
    return "\n".join(lines)


def push_folder(plan: PushPlan, client: Any = None) -> dict[str, Any]:
    """Create the repo (if missing), the branch (if ``revision``), and commit the plan's files.

    Args:
        plan: from :func:`plan_push`.
        client: an object with ``create_repo``, ``create_branch`` and ``create_commit`` as
            ``huggingface_hub.HfApi`` has them (default: :func:`make_client`).

    Returns:
        ``{"repo_id", "revision", "files", "url"}``.

    Raises:
        ConfigError: no token with the real client. PushError: the Hub refused the upload.
    """
    from huggingface_hub import CommitOperationAdd, get_token

    token = require_token() if client is None else get_token()
    client = make_client() if client is None else client
    if plan.card_is_new:
        from sbert_triplet.training.io import write_text_atomic

        write_text_atomic(plan.folder / "README.md", plan.card)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(plan.folder / name)) for name in plan.files]
    try:
        client.create_repo(plan.repo_id, private=plan.private, exist_ok=True, repo_type="model", token=token)
        if plan.revision and plan.revision != "main":
            client.create_branch(plan.repo_id, branch=plan.revision, exist_ok=True, token=token)
        info = client.create_commit(plan.repo_id, operations, commit_message=plan.commit_message,
                                    revision=plan.revision, token=token)
    except Exception as err:
        if isinstance(err, SbertTripletError):
            raise
        raise PushError(f"upload of {plan.folder} to {plan.repo_id} failed: {type(err).__name__}: "
                        f"{_first_line(err, token)}. Check the repo id, your write access and the network") from None
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{plan.repo_id}"
    logger.info("pushed %d files to %s", len(plan.files), url)
    return {"repo_id": plan.repo_id, "revision": plan.revision or "main", "files": list(plan.files), "url": url}


def _first_line(err: Exception, token: str | None) -> str:
    line = (str(err).splitlines() or [""])[0]
    return line.replace(token, "<token>") if token else line
