from __future__ import annotations

from datetime import UTC, datetime

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from training.scheduler import ScheduleError, build_trigger


def test_interval_cron_and_off() -> None:
    assert build_trigger(interval_hours=0, cron=None) is None
    interval = build_trigger(interval_hours=6, cron=None)
    assert isinstance(interval, IntervalTrigger)
    assert interval.interval.total_seconds() == 6 * 3600
    cron = build_trigger(interval_hours=6, cron="30 3 * * *")
    assert isinstance(cron, CronTrigger)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    fire = cron.get_next_fire_time(None, now)
    assert (fire.hour, fire.minute) == (3, 30)


def test_a_bad_crontab_is_a_clear_error() -> None:
    with pytest.raises(ScheduleError, match="invalid training schedule"):
        build_trigger(interval_hours=1, cron="every night")
