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


class PromotionWithheld(Exception):
    """The gate approved the candidate but it must not serve; the message (Italian, for
    the admins) says why. The run ends refused."""


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
    run_dir: Path | None = None,
) -> None:
    """Install the candidate's folder, switch ``CURRENT``, then mark it active in the DB.

    ``move`` moves the candidate's folders into the registry instead of copying them.
    ``metrics["parent"]`` is the version the candidate was judged against: if another one
    serves by now (a /rollback meanwhile) the promotion is withheld, and so it is if a
    /forget reached ``run_dir`` (the run's folder) while the version was being installed.
    """

    version = registry.install(
        name, hf_dir=hf_dir, ct2_dir=ct2_dir, metrics=metrics, card=card, move=move,
        trained_on=trained_on,
    )  # fmt: skip
    if run_dir is not None:
        _withdraw_if_forgotten(registry, name, run_dir, trained_on)
    with database.unit_of_work() as uow:
        row = training_records.get_model_version(uow.session, name)
        if row is None or row.id != model_version_id:
            raise RegistryError(f"model version {name!r} is not recorded in the database")
        row.hf_dir = str(version.hf_dir)
        row.ct2_dir = str(version.ct2_dir)
        row.metrics = {**row.metrics, **metrics}
        _check_still_serving(registry, name, str(metrics.get("parent") or BASE_VERSION))
        # The pointer first: if the DB commit then fails the bot serves the better model
        # and the next run's ensure_version_row() re-syncs the active flag from CURRENT.
        try:
            registry.set_current(name)
        except RegistryError as exc:
            if registry.get(name).forgotten:  # a /forget after the check above
                raise PromotionWithheld(FORGOTTEN_MEANWHILE) from exc
            raise
        training_records.activate_model_version(uow.session, row.id)
        uow.commit()


FORGOTTEN_MEANWHILE = (
    "promozione annullata: l'addestramento ha usato audio che un utente ha cancellato con "
    "/forget mentre era in corso, quindi il nuovo modello non verrà mai usato."
)
# A run resumed after a kill finds its version installed but not serving.
INSTALLED_NOT_SERVING = (
    "promozione non completata: {name} è stato installato ma non è in servizio (il "
    "processo si è fermato prima, o la promozione era stata annullata). Il modello resta "
    "quello in uso."
)


def _withdraw_if_forgotten(
    registry: ModelRegistry, name: str, run_dir: Path, trained_on: Collection[str]
) -> None:
    """A /forget that reached the run after the gate could not see the version's temporary
    folder: mark the version as it would have (the run's list lost the hashes it removed)."""
    from training import forgetting

    if forgetting.run_forgotten(run_dir):
        registry.withdraw(name, set(trained_on) - forgetting.trained_on(run_dir))
        raise PromotionWithheld(FORGOTTEN_MEANWHILE)


def _check_still_serving(registry: ModelRegistry, name: str, judged_against: str) -> None:
    """The candidate beat ``judged_against``; a /rollback since then serves another one,
    which it was never compared with (and /rollback from it would go to the wrong one)."""
    serving = registry.current_name()
    if serving != judged_against:
        raise PromotionWithheld(
            f"promozione annullata: {name} è stato confrontato con {judged_against}, ma "
            f"durante l'addestramento è tornato in servizio {serving} (/rollback). "
            "Il modello resta quello in uso; avvia un nuovo addestramento con /retrain."
        )


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
