"""Admin commands for the correction loop: /retrain, /status, /wer, /models, /rollback;
and the scheduled training tick."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from telegram import InputFile, Update
from telegram.ext import Application, ContextTypes

from bot.alerts import notify_admins
from bot.bootstrap import SERVICES_KEY, Services
from bot.formatting import escape
from bot.handlers.admin import admin_only
from bot.handlers.common import answer, answer_photo, command, services
from bot.training_control import StartRefusal
from bot.training_texts import (
    interrupted_text,
    models_text,
    rollback_refusal_text,
    start_text,
    status_text,
    wer_table,
)

log = logging.getLogger(__name__)

TRAINING_COMMANDS = (
    ("retrain", "Avvia l'addestramento (admin)"),
    ("status", "Stato dell'addestramento (admin)"),
    ("wer", "Storico del WER (admin)"),
    ("models", "Versioni del modello (admin)"),
    ("rollback", "Torna al modello precedente (admin)"),
)
# How often the bot looks for finished runs, to tell the admins.
WATCH_SECONDS = 30.0
ANNOUNCED_KEY = "announced_training_runs"


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

    training = services(context).training
    points = await asyncio.to_thread(training.wer_history)
    latest = await asyncio.to_thread(training.status)
    await answer(update, wer_table(points, latest))
    if points:
        png = await asyncio.to_thread(wer_plot_png, points)
        await answer_photo(update, InputFile(png, filename="wer.png"), caption="WER per versione")


@admin_only
async def models(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    listed = await asyncio.to_thread(services(context).training.list_models)
    await answer(update, models_text(listed))


@admin_only
async def rollback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from model.asr.registry import RegistryError

    try:
        name = await asyncio.to_thread(services(context).training.rollback)
    except RegistryError as exc:
        log.info("rollback refused: %s", exc)
        await answer(update, rollback_refusal_text(exc))
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
        log.info("scheduled training not started: %s", result.refusal)


async def watch_runs(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Tell the admins when a run ends, with the gate's decision; resume (or give up) a run
    whose trainer died, and tell them that too."""
    svc: Services = context.application.bot_data[SERVICES_KEY]
    current = await asyncio.to_thread(svc.training.status)
    announced: set[int] = context.application.bot_data.setdefault(ANNOUNCED_KEY, set())
    if current is not None and current.interrupted:
        result = await asyncio.to_thread(svc.training.start_run)
        log.warning("training run %s lost its trainer: %s", current.run_id, result)
        if result.refusal is StartRefusal.IN_PROGRESS:
            return  # someone else resumed it meanwhile
        if result.refusal is StartRefusal.GIVEN_UP:
            announced.add(current.run_id)  # this message is its end
        text = interrupted_text(current.run_id, result)
        await notify_admins(context.bot, svc.settings.admin_ids, text)
        return
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
    app.add_handler(command("retrain", retrain))
    app.add_handler(command("status", status))
    app.add_handler(command("wer", wer))
    app.add_handler(command("models", models))
    app.add_handler(command("rollback", rollback))
