"""Italian texts of the correction loop, in one place: why a run did not start, a run's
status, the gate's verdict per set, the WER history and the model list.

Shared by the Telegram handlers (``bot.handlers.training_admin``) and the CLI
(``bot.commands.training``). HTML-escaped where text comes from data; no ``telegram``
import.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.formatting import escape, progress_bar
from bot.training_control import MAX_ATTEMPTS, StartRefusal, StartResult
from model.asr.registry import (
    NothingToRollBack,
    RegistryError,
    VersionError,
    VersionForgotten,
    VersionMissing,
    VersionUnusable,
)
from storage.models import RunStatus
from training.gate_policy import GENERAL_SET, HELDOUT_SET, RECENT_SET
from training.gate_records import GateDecision, SetCheck, Verdict

if TYPE_CHECKING:
    from pathlib import Path

    from bot.training_control import ModelInfo, TrainingStatus

STATUS_NAMES = {
    RunStatus.PENDING: "in attesa",
    RunStatus.RUNNING: "in corso",
    RunStatus.DONE: "completato",
    RunStatus.FAILED: "fallito",
    RunStatus.CANCELLED: "annullato",
}
START_REFUSALS = {
    StartRefusal.IN_PROGRESS: "È già in corso l'addestramento #{run_id}: /status per i progressi.",
    StartRefusal.GIVEN_UP: (
        "L'addestramento #{run_id} è stato interrotto troppe volte e l'ho abbandonato: "
        "guarda il registro, poi riprova con /retrain."
    ),
    StartRefusal.NOT_ENOUGH_SAMPLES: (
        "Non ho avviato l'addestramento: {new_samples} campioni nuovi, ne servono {needed}."
    ),
}
# ``whisper-it train`` has no /status nor /retrain: its own way to follow or retry a run.
CLI_START_REFUSALS = START_REFUSALS | {
    StartRefusal.IN_PROGRESS: (
        "È già in corso l'addestramento #{run_id}: i progressi sono nel suo log, {log}; "
        "quando finisce, `whisper-it models` mostra il verdetto."
    ),
    StartRefusal.GIVEN_UP: (
        "L'addestramento #{run_id} è stato interrotto troppe volte e l'ho abbandonato: "
        "guarda il suo log, {log}, poi riprova con `whisper-it train`."
    ),
}
# The markup these texts use, removed for a terminal (``plain_text``).
_TAGS = re.compile(r"</?(?:b|code|pre)>")
SET_NAMES = {
    HELDOUT_SET: "frasi mai viste",
    GENERAL_SET: "insieme generale",
    RECENT_SET: "audio recenti non corretti",
}
VERDICTS = {
    Verdict.BETTER: "migliore",
    Verdict.WORSE: "peggiore",
    Verdict.INCONCLUSIVE: "differenza non significativa",
}
WER_TABLE_ROWS = 30
# /models lists the latest versions (and always the serving one and its parent): each
# takes about 200 characters, and a Telegram message holds 4096.
MODELS_SHOWN = 10
# Why /rollback changed nothing (the registry's own texts are English, for the CLI).
ROLLBACK_REFUSED = "Non posso tornare indietro: {reason}"
ROLLBACK_NOTHING = "è già in servizio il modello di base, non c'è una versione precedente."
ROLLBACK_MISSING = (
    "la versione <code>{name}</code> non c'è fra i modelli installati "
    "(<code>whisper-it models</code> elenca quelli registrati)."
)
ROLLBACK_UNUSABLE = (
    "la versione <code>{name}</code> non si può usare (nome non valido o senza "
    "l'esportazione CTranslate2)."
)
ROLLBACK_OTHER = "il registro dei modelli non permette il cambio; i dettagli sono nel log."
MODELS_MORE = "… e altre {count} versioni più vecchie (elenco completo: whisper-it models)"
INTERRUPTED = "interrotto"
INTERRUPTED_NOTICE = (
    "⚠️ L'addestramento #{run_id} si è fermato senza finire (il processo è terminato, "
    "forse per memoria esaurita)."
)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def points(value: float) -> str:
    return f"{value * 100:+.1f}".replace("-", "−")


def start_text(result: StartResult) -> str:
    if result.started:
        verb = "ripreso" if result.resumed else "avviato"
        return f"🏋️ Addestramento #{result.run_id} {verb}. Segui i progressi con /status."
    template = START_REFUSALS[result.refusal or StartRefusal.IN_PROGRESS]
    return template.format(
        run_id=result.run_id, new_samples=result.new_samples, needed=result.needed
    )


def cli_refusal_text(result: StartResult, log_path: Path | None) -> str:
    """Why ``whisper-it train`` started nothing, plain text: the bot's reasons, each with
    the command line's way on (``log_path``: the blocking run's log)."""
    template = CLI_START_REFUSALS[result.refusal or StartRefusal.IN_PROGRESS]
    return template.format(
        run_id=result.run_id, new_samples=result.new_samples, needed=result.needed, log=log_path
    )


def plain_text(text: str) -> str:
    """A text of this module for a terminal: no tags, entities back to characters."""
    return html.unescape(_TAGS.sub("", text))


def interrupted_text(run_id: int, result: StartResult) -> str:
    """A run whose trainer died, and what was done about it (resumed, or given up)."""
    return INTERRUPTED_NOTICE.format(run_id=run_id) + "\n" + start_text(result)


def rollback_refusal_text(error: RegistryError) -> str:
    name = escape(error.name) if isinstance(error, VersionError) else ""
    if isinstance(error, VersionForgotten):
        reason = escape(str(error))  # already Italian: it is also the CLI's
    elif isinstance(error, NothingToRollBack):
        reason = ROLLBACK_NOTHING
    elif isinstance(error, VersionMissing):
        reason = ROLLBACK_MISSING.format(name=name)
    elif isinstance(error, VersionUnusable):
        reason = ROLLBACK_UNUSABLE.format(name=name)
    else:
        reason = ROLLBACK_OTHER
    return ROLLBACK_REFUSED.format(reason=reason)


def check_line(check: SetCheck, confidence: float) -> str:
    """One set's comparison: WER before -> after, the change with its interval, the verdict."""
    interval = check.interval
    mark = "✅" if check.passed else "❌"
    name = SET_NAMES.get(check.eval_set, check.eval_set)
    if check.baseline == "base":
        name += " (rispetto al modello di base)"
    confidence = check.interval_confidence or confidence
    return (
        f"{mark} {escape(name)}: WER {pct(check.current_wer)} → {pct(check.candidate_wer)} "
        f"({points(interval.delta)} punti, intervallo al {100 * confidence:.0f}% "
        f"[{points(interval.low)}, {points(interval.high)}]; {check.clips} clip, "
        f"{check.sentences} frasi): {VERDICTS[check.verdict]}"
    )


def gate_lines(decision: GateDecision) -> list[str]:
    if not decision.checks:
        return [
            "❌ Nessun insieme di valutazione ha abbastanza clip per giudicare: "
            "il modello resta quello in uso."
        ]
    return [check_line(check, decision.confidence) for check in decision.checks]


def status_text(status: TrainingStatus | None) -> str:
    if status is None:
        return "Nessun addestramento è stato ancora eseguito."
    name = INTERRUPTED if status.interrupted else STATUS_NAMES.get(status.status, status.status)
    lines = [f"<b>Addestramento #{status.run_id}</b>: {name}"]
    if status.interrupted:
        lines.append(
            "Il processo di addestramento non c'è più: tra poco lo riprendo "
            f"(dopo {MAX_ATTEMPTS} tentativi lo abbandono)."
        )
    if status.phase and status.is_open:
        lines.append(f"Fase: {escape(str(status.phase))}")
    if status.steps_total:
        lines.append(f"Passi: {status.steps_done}/{status.steps_total}")
    if status.is_open:
        lines.append(progress_bar(status.progress))
    if status.samples_used is not None:
        lines.append(f"Campioni usati: {status.samples_used}")
    report = status.report
    if report is not None:
        verdict = "Nuovo modello promosso ✅" if report.promoted else "Modello non promosso ❌"
        lines.append(f"{verdict} (<code>{escape(report.candidate)}</code>)")
        if report.data.fresh_clips:
            lines.append(
                f"Clip di frasi nuove messe alla prova: {report.data.fresh_clips} "
                "(il prossimo addestramento le userà)"
            )
        tuned = report.finetune
        if tuned.best_step is not None and tuned.validation_clips:
            lines.append(
                f"Passo tenuto: {tuned.best_step} di {tuned.steps} (migliore su "
                f"{tuned.validation_clips} clip di frasi escluse dall'addestramento)"
            )
        lines.append("Perché:")
        lines.extend(gate_lines(report.gate))
    if status.error:
        lines.append(f"Errore: <code>{escape(status.error[:500])}</code>")
    return "\n".join(lines)


def wer_table(history: Sequence[Any], latest: TrainingStatus | None = None) -> str:
    if not history:
        return "Nessuna valutazione registrata finora."
    rows = ["<b>Storico WER</b> (versione · insieme · WER · CER · clip · data)", "<pre>"]
    for point in history[-WER_TABLE_ROWS:]:
        marker = "*" if point.is_active else " "
        rows.append(
            f"{marker}{escape(point.model_version)[:24]:<24} {escape(point.eval_set)[:8]:<8} "
            f"{pct(point.wer):>6} {pct(point.cer):>6} {point.count:>4} "
            f"{point.created_at:%d/%m %H:%M}"
        )
    rows.append("</pre>* = modello in uso")
    rows.append(
        "heldout = frasi mai viste in addestramento; general = insieme generale; "
        "recent = audio recenti non corretti, confrontati con il testo già inviato."
    )
    report = latest.report if latest is not None else None
    if report is not None:
        outcome = "promosso" if report.promoted else "non promosso"
        rows.append(
            f"\n<b>Ultimo verdetto</b> (#{report.run_id}, <code>{escape(report.candidate)}"
            f"</code> {outcome}):"
        )
        rows.extend(gate_lines(report.gate))
    return "\n".join(rows)


def latest_models(models: Sequence[ModelInfo]) -> list[ModelInfo]:
    """The last ``MODELS_SHOWN`` versions, plus the serving one and its parent."""
    keep = {info.name for info in models[-MODELS_SHOWN:]}
    for info in models:
        if info.is_current:
            keep |= {info.name, info.parent or ""}
    return [info for info in models if info.name in keep]


def models_text(models: Sequence[ModelInfo]) -> str:
    lines = ["<b>Versioni del modello</b>"]
    shown = latest_models(models)
    for info in shown:
        wer = ", ".join(f"{escape(k)} {pct(v)}" for k, v in sorted(info.wer.items()))
        mark = "▶️" if info.is_current else "•"
        lines.append(f"{mark} <code>{escape(info.name)}</code>" + (f" – {wer}" if wer else ""))
        primary = (
            info.gate.check(info.gate.primary_set) if info.gate and info.gate.primary_set else None
        )
        if primary is not None and info.gate is not None:
            verdict = "promosso" if info.gate.promote else "rifiutato"
            lines.append(f"   {verdict}: {check_line(primary, info.gate.confidence)}")
    if len(shown) < len(models):
        lines.append(MODELS_MORE.format(count=len(models) - len(shown)))
    return "\n".join(lines)
