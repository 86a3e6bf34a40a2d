"""Every limit is a setting with a sensible range: a value outside it is refused when the
settings are read (one line from the CLI), not met later as a crash on every request.
``MESSAGES_PER_MINUTE=0`` made the rate limiter raise IndexError on every message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.rate_limit import RateLimiter
from bot.settings import SCHEDULE_MAX_HOURS, Settings
from training.scheduler import build_trigger

OUT_OF_RANGE = {
    "messages_per_minute": 0,
    "max_queued_jobs": 0,
    "max_pending_jobs_per_user": 0,
    "retention_days": -1,
    "max_message_chars": 5000,
    "eval_fraction": 1.0,
    "download_timeout_seconds": 0,
    "webhook_port": 70_000,
    "beam_size": 0,
    "max_audio_seconds": 0,
    "log_level": "verbose",
}


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE.items())
def test_a_limit_out_of_range_is_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{name: value})  # type: ignore[call-arg]
    assert name in str(caught.value)


def test_the_smallest_accepted_rate_limit_works() -> None:
    settings = Settings(_env_file=None, messages_per_minute=1, log_level="debug")  # type: ignore[call-arg]
    assert settings.log_level == "DEBUG"
    limiter = RateLimiter(limit=settings.messages_per_minute)
    assert limiter.hit(1) == 0 and limiter.hit(1) > 0


# The scheduler met these only when the bot started (``OverflowError`` from the dates).
BAD_SCHEDULES = [
    ("train_schedule_hours", 1e9),
    ("train_schedule_hours", float("inf")),
    ("train_schedule_cron", "every day"),
    ("train_schedule_cron", "61 * * * *"),
]


@pytest.mark.parametrize(("name", "value"), BAD_SCHEDULES)
def test_a_schedule_the_scheduler_cannot_use_is_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{name: value})  # type: ignore[call-arg]
    assert name in str(caught.value)


def test_the_longest_schedule_still_fires() -> None:
    settings = Settings(_env_file=None, train_schedule_hours=SCHEDULE_MAX_HOURS)  # type: ignore[call-arg]
    trigger = build_trigger(interval_hours=settings.train_schedule_hours, cron=None)
    assert trigger is not None
    now = datetime.now(UTC)
    assert trigger.get_next_fire_time(None, now) > now
