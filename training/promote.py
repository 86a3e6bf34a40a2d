"""After the gate: the model card, promotion into the registry, rollback.

Promotion installs the version folder, switches ``CURRENT`` atomically and marks the
version active in the database; rollback serves the parent again. The decision itself is
``training.gate``'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from model.asr.registry import BASE_VERSION, ModelRegistry, RegistryError
from storage import training_records
from training.gate_records import GateDecision

# --------------------------------------------------------------------------- model card


def model_card(
    *,
    name: str,
    parent: str,
    base_model: str,
    decision: GateDecision,
    training: Mapping[str, Any],
    created_at: dt.datetime,
) -> str:
    """A Hugging Face-style model card (README.md) for a promoted version."""
    table = _card_table(decision)
    facts = "\n".join(f"- {key}: {value}" for key, value in sorted(training.items()))
    return f"""---
language: it
license: mit
library_name: ctranslate2
pipeline_tag: automatic-speech-recognition
tags: [whisper, whisper-it, italian, speech-recognition]
---

# {name}

Whisper fine-tuned for Italian by whisper-it from its users' corrections.
Trained from the base model `{base_model}` on {created_at:%Y-%m-%d %H:%M} UTC; replaces `{parent}`.

Folders: `hf/` (transformers checkpoint), `ct2/` (CTranslate2 int8, what the bot serves).

## Evaluation (faster-whisper, int8, beam 5, normalised WER)

The candidate and the model it is compared with (`serving`, or the `base` model) on the
same clips. `heldout`: corrections whose sentences training never saw; `general`: a set of
other speech nobody can write to; `recent`: recent audio nobody corrected, scored against
the transcript users were given. Change = mean per-clip WER after - before, in points, over
speaker x sentence clusters with users capped (held-out corrections corrected for their
selection on errors), with its sign-flip interval ({100 * decision.confidence:.0f}% for
the primary gain, narrower for guards: see the rule).

| set | versus | role | clips | WER before | WER after | change [interval] | verdict | CER \
| insertions |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{table}

Gate: {"promoted" if decision.promote else "refused"}. {decision.summary}.

## Training

{facts}

## Limitations

Trained on a small number of corrected transcripts: expect gains on the voices, topics and
recording conditions of this bot's users, not in general. Language and task are forced to
Italian transcription.
"""


def _card_table(decision: GateDecision) -> str:
    rows = [
        f"| {c.eval_set} | {c.baseline} | {c.role} | "
        f"{c.clips} ({c.sentences} sentences, {c.users} users) | "
        f"{_pct(c.current_wer)} | {_pct(c.candidate_wer)} | {_signed(c.interval.delta)} "
        f"[{_signed(c.interval.low)}, {_signed(c.interval.high)}] | {c.verdict} | "
        f"{_pct(c.candidate_cer)} | {_pct(c.candidate_insertion_rate)} |"
        for c in decision.checks
    ]
    return "\n".join(rows) or "| - | - | - | - | - | - | - | - | - | - |"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"


# --------------------------------------------------------------------------- promotion


def promote_version(
    registry: ModelRegistry,
    database: Any,
    *,
    name: str,
    hf_dir: Any,
    ct2_dir: Any,
    metrics: dict[str, Any],
    card: str,
    model_version_id: int,
    move: bool = True,
    trained_on: Collection[str] = (),
) -> None:
    """Install the candidate's folder, switch ``CURRENT``, then mark it active in the DB.

    ``move`` moves the candidate's folders into the registry instead of copying them.
    """

    version = registry.install(
        name, hf_dir=hf_dir, ct2_dir=ct2_dir, metrics=metrics, card=card, move=move,
        trained_on=trained_on,
    )  # fmt: skip
    with database.unit_of_work() as uow:
        row = training_records.get_model_version(uow.session, name)
        if row is None or row.id != model_version_id:
            raise RegistryError(f"model version {name!r} is not recorded in the database")
        row.hf_dir = str(version.hf_dir)
        row.ct2_dir = str(version.ct2_dir)
        row.metrics = {**row.metrics, **metrics}
        # The pointer first: if the DB commit then fails the bot serves the better model
        # and the next run's ensure_version_row() re-syncs the active flag from CURRENT.
        registry.set_current(name)
        training_records.activate_model_version(uow.session, row.id)
        uow.commit()


def rollback(registry: ModelRegistry, database: Any) -> str:
    """Serve the current version's parent again (on disk and in the DB); return its name."""

    name = registry.rollback()
    with database.unit_of_work() as uow:
        row = training_records.get_model_version(uow.session, name)
        if row is None:
            row = training_records.add_model_version(uow.session, name=name)
        training_records.activate_model_version(uow.session, row.id)
        uow.commit()
    return name


def ensure_version_row(session: Any, name: str, *, spec: str | None = None) -> Any:
    """The DB row of a served version, created for the base model on first use."""

    row = training_records.get_model_version(session, name)
    if row is None:
        metrics = {"spec": spec} if spec and name == BASE_VERSION else {}
        row = training_records.add_model_version(session, name=name, metrics=metrics)
    return row


def push_to_hub(folder: Path, repo_id: str, *, revision_message: str) -> None:
    """Upload a version folder (huggingface_hub takes the token from its own config/env)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, private=True)
    api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), commit_message=f"whisper-it {revision_message}"
    )
