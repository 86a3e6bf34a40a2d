"""Every limit is a setting with a sensible range: a value outside it is refused when the
settings are read (one line from the CLI), not met later as a crash on every request.
``MESSAGES_PER_MINUTE=0`` made the rate limiter raise IndexError on every message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.rate_limit import RateLimiter
from bot.settings import Settings

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
