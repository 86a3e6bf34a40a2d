"""Admin commands for the correction loop: /retrain, /status, /wer, /models, /rollback;
and the scheduled training tick."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from telegram import InputFile, Update
from telegram.ext import Application, CommandHandler, ContextTypes

from bot.container import SERVICES_KEY, Services
from bot.formatting import escape, progress_bar
from bot.handlers.admin import admin_only
from bot.handlers.common import answer, services
from bot.handlers.errors import notify_admins

log = logging.getLogger(__name__)

TRAINING_COMMANDS = (
    ("retrain", "Avvia l'addestramento (admin)"),
    ("status", "Stato dell'addestramento (admin)"),
    ("wer", "Storico del WER (admin)"),
    ("models", "Versioni del modello (admin)"),
    ("rollback", "Torna al modello precedente (admin)"),
)
STATUS_NAMES = {
    "pending": "in attesa",
    "running": "in corso",
    "done": "completato",
    "failed": "fallito",
    "cancelled": "annullato",
}
# How often the bot looks for finished runs, to tell the admins.
WATCH_SECONDS = 30.0
WER_TABLE_ROWS = 30
ANNOUNCED_KEY = "announced_training_runs"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def status_text(status) -> str:
    if status is None:
        return "Nessun addestramento è stato ancora eseguito."
    lines = [
        f"<b>Addestramento #{status.run_id}</b>: {STATUS_NAMES.get(status.status, status.status)}"
    ]
    if status.phase:
        lines.append(f"Fase: {escape(str(status.phase))}")
    if status.steps_total:
        lines.append(f"Passi: {status.steps_done}/{status.steps_total}")
    if status.is_open:
        lines.append(progress_bar(status.progress))
    if status.samples_used is not None:
        lines.append(f"Campioni usati: {status.samples_used}")
    promoted = status.promoted
    if promoted is not None:
        lines.append("Nuovo modello promosso ✅" if promoted else "Modello non promosso ❌")
    decision = status.metrics.get("decision") or status.metrics.get("reason")
    if decision:
        lines.append(f"Motivo: {escape(str(decision))}")
    if status.error:
        lines.append(f"Errore: <code>{escape(status.error[:500])}</code>")
    return "\n".join(lines)


def start_text(result) -> str:
    if result.started:
        verb = "ripreso" if result.resumed else "avviato"
        return f"🏋️ Addestramento #{result.run_id} {verb}. Segui i progressi con /status."
    if result.run_id is not None and result.reason == "a run is in progress":
        return f"È già in corso l'addestramento #{result.run_id}: /status per i progressi."
    return f"Non ho avviato l'addestramento: {escape(result.reason or 'motivo sconosciuto')}."


def wer_table(points) -> str:
    if not points:
        return "Nessuna valutazione registrata finora."
    rows = ["<b>Storico WER</b> (versione · insieme · WER · CER · clip · data)", "<pre>"]
    for point in points[-WER_TABLE_ROWS:]:
        marker = "*" if point.is_active else " "
        rows.append(
            f"{marker}{escape(point.model_version)[:24]:<24} {escape(point.eval_set)[:8]:<8} "
            f"{_pct(point.wer):>6} {_pct(point.cer):>6} {point.count:>4} "
            f"{point.created_at:%d/%m %H:%M}"
        )
    rows.append("</pre>* = modello in uso")
    return "\n".join(rows)


def models_text(models) -> str:
    lines = ["<b>Versioni del modello</b>"]
    for info in models:
        wer = ", ".join(f"{escape(k)} {_pct(v)}" for k, v in sorted(info.wer.items()))
        mark = "▶️" if info.is_current else "•"
        lines.append(f"{mark} <code>{escape(info.name)}</code>" + (f" – {wer}" if wer else ""))
    return "\n".join(lines)


@admin_only
async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    training = services(context).training
    result = await asyncio.to_thread(training.start_run, force=True)
    await answer(update, start_text(result))


@admin_only
async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    current = await asyncio.to_thread(services(context).training.status)
    await answer(update, status_text(current))


@admin_only
async def wer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.plots import wer_plot_png

    points = await asyncio.to_thread(services(context).training.wer_history)
    await answer(update, wer_table(points))
    message = update.effective_message
    if points and message is not None:
        png = await asyncio.to_thread(wer_plot_png, points)
        await message.reply_photo(InputFile(png, filename="wer.png"), caption="WER per versione")


@admin_only
async def models(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    listed = await asyncio.to_thread(services(context).training.list_models)
    await answer(update, models_text(listed))


@admin_only
async def rollback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from model.registry import RegistryError

    try:
        name = await asyncio.to_thread(services(context).training.rollback)
    except RegistryError as exc:
        await answer(update, f"Non posso tornare indietro: {escape(str(exc))}")
        return
    await answer(
        update,
        f"↩️ Torno al modello <code>{escape(name)}</code>: lo userò dalla prossima richiesta.",
    )


async def scheduled_training(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's tick: start (or resume) a run if there are enough new samples."""
    svc: Services = context.application.bot_data[SERVICES_KEY]
    result = await asyncio.to_thread(svc.training.start_run)
    if result.started:
        log.info("scheduled training run %s started", result.run_id)
        await notify_admins(context.bot, svc.settings.admin_ids, start_text(result))
    else:
        log.info("scheduled training not started: %s", result.reason)


async def watch_runs(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Tell the admins when a run ends, with the gate's decision."""
    svc: Services = context.application.bot_data[SERVICES_KEY]
    current = await asyncio.to_thread(svc.training.status)
    announced: set[int] = context.application.bot_data.setdefault(ANNOUNCED_KEY, set())
    if current is None or current.is_open or current.run_id in announced:
        return
    announced.add(current.run_id)
    await notify_admins(context.bot, svc.settings.admin_ids, status_text(current))


async def start_scheduling(app: Application) -> None:
    """Startup hook: resume an interrupted run, schedule training, watch for results."""
    from training.scheduler import FIRST_TICK_DELAY, build_trigger

    svc: Services = app.bot_data[SERVICES_KEY]
    current = await asyncio.to_thread(svc.training.status)
    announced = app.bot_data.setdefault(ANNOUNCED_KEY, set())
    if current is not None and not current.is_open:
        announced.add(current.run_id)  # it ended before this start: old news
    if current is not None and current.is_open:
        result = await asyncio.to_thread(svc.training.start_run)
        log.info("interrupted training run: %s", result)
    if app.job_queue is None:
        log.warning("no job queue: scheduled training is off")
        return
    trigger = build_trigger(
        interval_hours=svc.settings.train_schedule_hours, cron=svc.settings.train_schedule_cron
    )
    if trigger is not None:
        first = datetime.now(UTC) + FIRST_TICK_DELAY
        app.job_queue.run_custom(
            scheduled_training, job_kwargs={"trigger": trigger, "next_run_time": first}
        )
        log.info("training scheduled: %s", trigger)
    app.job_queue.run_repeating(watch_runs, WATCH_SECONDS, first=WATCH_SECONDS)


def register(app: Application) -> None:
    app.add_handler(CommandHandler("retrain", retrain))
    app.add_handler(CommandHandler("status", status))
    app.add_handler(CommandHandler("wer", wer))
    app.add_handler(CommandHandler("models", models))
    app.add_handler(CommandHandler("rollback", rollback))
