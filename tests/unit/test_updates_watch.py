"""``UpdatesWatch``: readiness in polling mode follows getUpdates' answers, not PTB's
``Updater.running`` (which stays True after its loop gave up)."""

from __future__ import annotations

from http import HTTPStatus

from bot.ops.updates_watch import CONFLICT_SECONDS, STALE_SECONDS, UpdatesWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nothing_polled_is_no_problem_then_a_silent_poller_goes_stale() -> None:
    clock = Clock()
    watch = UpdatesWatch(clock=clock)
    clock.now += 10 * STALE_SECONDS
    assert watch.problem() is None  # webhook mode: getUpdates is never called
    watch.asking()
    clock.now += STALE_SECONDS / 2
    assert watch.problem() is None  # the first long poll is still within its time
    watch.answered(HTTPStatus.OK)
    clock.now += STALE_SECONDS + 1
    assert "getUpdates" in (watch.problem() or "")
    watch.answered(HTTPStatus.OK)
    assert watch.problem() is None


def test_a_conflict_is_a_problem_for_a_while_even_between_successes() -> None:
    clock = Clock()
    watch = UpdatesWatch(clock=clock)
    watch.asking()
    watch.answered(HTTPStatus.CONFLICT)
    watch.answered(HTTPStatus.OK)
    assert "Conflict" in (watch.problem() or "")
    clock.now += CONFLICT_SECONDS + 1
    watch.answered(HTTPStatus.OK)
    assert watch.problem() is None


def test_a_refused_token_is_reported_once_and_stays_a_problem() -> None:
    refusals: list[int] = []
    watch = UpdatesWatch(clock=Clock())
    watch.on_token_refused = lambda: refusals.append(1)
    watch.answered(HTTPStatus.UNAUTHORIZED)
    watch.answered(HTTPStatus.UNAUTHORIZED)
    watch.answered(HTTPStatus.OK)
    assert watch.token_refused and refusals == [1]
    assert "token" in (watch.problem() or "")
