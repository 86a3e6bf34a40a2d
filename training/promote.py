"""The gate: a candidate replaces the current model only if the serving engine says so.

Both models are evaluated with the serving engine on the same fixed sets:

* ``heldout``: the hash-chosen eval split of the stored samples (users' corrections, never
  trained on), primary when it has at least ``min_eval_samples`` clips;
* ``general``: an optional fixed set from a manifest (another domain, other speakers),
  primary when the held-out split is still too small, and otherwise a guard against
  forgetting.

Promotion needs: primary-set WER better by at least ``min_wer_improvement`` (absolute),
the general set no worse than ``general_tolerance``, and no set with an insertion rate
above ``max_insertion_rate`` (generation loops). Every evaluation is recorded; promotion
installs the version folder, switches ``CURRENT`` atomically and marks it active.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.normalize import ErrorRates
from model.registry import BASE_VERSION, ModelRegistry, RegistryError

HELDOUT_SET = "heldout"
GENERAL_SET = "general"


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    min_wer_improvement: float = 0.005
    general_tolerance: float = 0.01
    max_insertion_rate: float = 0.2
    min_eval_samples: int = 5


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    primary_set: str | None
    reasons: tuple[str, ...]
    current: Mapping[str, ErrorRates] = field(default_factory=dict)
    candidate: Mapping[str, ErrorRates] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "primary_set": self.primary_set,
            "reasons": list(self.reasons),
            "current": {name: rates.as_dict() for name, rates in self.current.items()},
            "candidate": {name: rates.as_dict() for name, rates in self.candidate.items()},
        }

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


def decide(
    current: Mapping[str, ErrorRates],
    candidate: Mapping[str, ErrorRates],
    policy: GatePolicy = GatePolicy(),
) -> GateDecision:
    """Pure decision from the two models' scores on the same sets."""
    reasons: list[str] = []
    primary = _primary_set(candidate, policy)
    if primary is None:
        return GateDecision(
            False, None, ("no evaluation set has enough samples to judge",), current, candidate
        )
    ok = True
    gain = current[primary].wer - candidate[primary].wer
    if gain >= policy.min_wer_improvement:
        reasons.append(
            f"{primary} WER {_pct(current[primary].wer)} -> {_pct(candidate[primary].wer)}"
        )
    else:
        ok = False
        reasons.append(
            f"{primary} WER {_pct(current[primary].wer)} -> {_pct(candidate[primary].wer)}: "
            f"needs an improvement of at least {_pct(policy.min_wer_improvement)}"
        )
    if primary != GENERAL_SET and GENERAL_SET in candidate and candidate[GENERAL_SET].n:
        loss = candidate[GENERAL_SET].wer - current[GENERAL_SET].wer
        text = f"general WER {_pct(current[GENERAL_SET].wer)} -> {_pct(candidate[GENERAL_SET].wer)}"
        if loss > policy.general_tolerance:
            ok = False
            text += f": regresses beyond the tolerance of {_pct(policy.general_tolerance)}"
        reasons.append(text)
    for name, rates in candidate.items():
        before = current[name].insertion_rate if name in current else 0.0
        # Alarm on loops the candidate brings, not on a set where both models insert.
        if rates.n and rates.insertion_rate > max(policy.max_insertion_rate, before):
            ok = False
            reasons.append(
                f"{name} insertion rate {_pct(rates.insertion_rate)} is above "
                f"{_pct(policy.max_insertion_rate)} (generation loops?)"
            )
    return GateDecision(ok, primary, tuple(reasons), current, candidate)


def _primary_set(candidate: Mapping[str, ErrorRates], policy: GatePolicy) -> str | None:
    for name in (HELDOUT_SET, GENERAL_SET):
        if name in candidate and candidate[name].n >= policy.min_eval_samples:
            return name
    return None


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


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
    rows = []
    for set_name, candidate in decision.candidate.items():
        current = decision.current.get(set_name)
        rows.append(
            f"| {set_name} | {candidate.n} | {_pct(current.wer) if current else '-'} | "
            f"{_pct(candidate.wer)} | {_pct(candidate.cer)} | {_pct(candidate.insertion_rate)} |"
        )
    table = "\n".join(rows) or "| - | - | - | - | - | - |"
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
Trained from `{parent}` (base model: `{base_model}`) on {created_at:%Y-%m-%d %H:%M} UTC.

Folders: `hf/` (transformers checkpoint), `ct2/` (CTranslate2 int8, what the bot serves).

## Evaluation (faster-whisper, int8, beam 5, normalised WER)

| set | clips | WER before | WER after | CER after | insertion rate |
| --- | --- | --- | --- | --- | --- |
{table}

Gate: {decision.summary}.

## Training

{facts}

## Limitations

Trained on a small number of corrected transcripts: expect gains on the voices, topics and
recording conditions of this bot's users, not in general. Language and task are forced to
Italian transcription.
"""


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
) -> None:
    """Install the candidate's folder, switch ``CURRENT``, then mark it active in the DB.

    ``move`` moves the candidate's folders into the registry instead of copying them.
    """
    from storage import repository

    version = registry.install(
        name, hf_dir=hf_dir, ct2_dir=ct2_dir, metrics=metrics, card=card, move=move
    )
    with database.unit_of_work() as uow:
        row = repository.get_model_version(uow.session, name)
        if row is None or row.id != model_version_id:
            raise RegistryError(f"model version {name!r} is not recorded in the database")
        row.hf_dir = str(version.hf_dir)
        row.ct2_dir = str(version.ct2_dir)
        row.metrics = {**row.metrics, **metrics}
        # The pointer first: if the DB commit then fails the bot serves the better model
        # and the next run's ensure_version_row() re-syncs the active flag from CURRENT.
        registry.set_current(name)
        repository.activate_model_version(uow.session, row.id)
        uow.commit()


def rollback(registry: ModelRegistry, database: Any) -> str:
    """Serve the current version's parent again (on disk and in the DB); return its name."""
    from storage import repository

    name = registry.rollback()
    with database.unit_of_work() as uow:
        row = repository.get_model_version(uow.session, name)
        if row is None:
            row = repository.add_model_version(uow.session, name=name)
        repository.activate_model_version(uow.session, row.id)
        uow.commit()
    return name


def ensure_version_row(session: Any, name: str, *, spec: str | None = None) -> Any:
    """The DB row of a served version, created for the base model on first use."""
    from storage import repository

    row = repository.get_model_version(session, name)
    if row is None:
        metrics = {"spec": spec} if spec and name == BASE_VERSION else {}
        row = repository.add_model_version(session, name=name, metrics=metrics)
    return row
