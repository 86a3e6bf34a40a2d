"""When to re-train: an APScheduler trigger (interval or crontab) for the bot's job queue.

The tick itself only asks ``TrainingControl.start_run()``, which starts a run when enough
new corrections arrived and none is running (or resumes an interrupted one). No torch
here: the bot imports this module at start.
"""

from __future__ import annotations

from datetime import timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

# The first tick comes soon after start, so an interrupted run resumes promptly.
FIRST_TICK_DELAY = timedelta(minutes=1)


class ScheduleError(ValueError):
    """The schedule settings cannot be understood."""


def build_trigger(*, interval_hours: float, cron: str | None) -> BaseTrigger | None:
    """The trigger for scheduled training; None when scheduling is off."""
    if cron:
        try:
            return CronTrigger.from_crontab(cron)
        except ValueError as exc:
            raise ScheduleError(f"invalid training schedule {cron!r}: {exc}") from exc
    if interval_hours <= 0:
        return None
    return IntervalTrigger(seconds=interval_hours * 3600)
