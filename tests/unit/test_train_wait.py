"""``whisper-it train --wait`` returns only when the training process is gone: the run is
recorded as finished before the process cleans up (a refused model kept with
``TRAIN_KEEP_REFUSED`` appears after that record), so returning on the record alone raced
the clean-up (the demo missed its refused candidates' scores)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.cli import CommandError
from bot.commands.training import CLEAN_UP_SECONDS, _follow
from storage.models import RunStatus


class _FinishedButCleaningUp:
    """A run whose record says finished while its process is still alive."""

    def __init__(self) -> None:
        self.waits: list[float | None] = []
        self.exited = False

    def wait(self, run_id: int, timeout: float | None = None) -> int | None:
        self.waits.append(timeout)
        if timeout == CLEAN_UP_SECONDS:
            self.exited = True
            return 0
        return None

    def get_run(self, run_id: int) -> SimpleNamespace:
        return SimpleNamespace(
            status=RunStatus.FAILED, is_open=False, error="out of memory", report=None,
            steps_done=3, steps_total=3, phase="done",
        )  # fmt: skip


def test_wait_outlasts_the_clean_up_after_the_record() -> None:
    control = _FinishedButCleaningUp()
    with pytest.raises(CommandError, match="out of memory"):
        _follow(control, 7)  # type: ignore[arg-type]
    assert control.exited and control.waits[-1] == CLEAN_UP_SECONDS
