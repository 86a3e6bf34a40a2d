"""Fast tests of the small services: the model holder's back-off, the rate limiter, the
pipeline's refusals, and the retention job."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import messages
from bot.model_holder import FIRST_RETRY_SECONDS, LoadFailure, ModelHolder
from bot.pipeline import InputRejected, LocalFile, MediaBytes, MediaLink
from bot.rate_limit import SWEEP_EVERY, RateLimiter
from tests.support.worker_support import FakeTranscriber, build_rig, tone_wav


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_new_version_is_loaded_once_however_many_workers_refresh() -> None:
    # Each worker refreshes between jobs: all loading the promoted version at once held
    # one copy per worker beside the old one (a GPU out of memory at every promotion).
    loads: list[str] = []
    loading = threading.Event()
    release = threading.Event()

    def load(spec: str) -> FakeTranscriber:
        loads.append(spec)
        if spec == "v2":
            loading.set()
            release.wait(10)
        return FakeTranscriber(model_name=spec)

    wanted = ["v1"]
    holder = ModelHolder(load, lambda: wanted[0])
    old = holder.get()
    wanted[0] = "v2"
    first = threading.Thread(target=holder.refresh)
    first.start()
    assert loading.wait(10)
    # The others go on serving the old model meanwhile instead of loading a copy.
    assert [holder.refresh() for _ in range(3)] == [False] * 3 and holder.get() is old
    release.set()
    first.join(10)
    assert loads == ["v1", "v2"] and holder.spec == "v2"
    assert holder.refresh() is False and loads == ["v1", "v2"]


def test_a_broken_version_is_retried_with_back_off_and_reported_once() -> None:
    good, fixed = FakeTranscriber(model_name="v1"), FakeTranscriber(model_name="v2")
    wanted = ["v1"]
    loads: list[str] = []
    broken: list[LoadFailure] = []
    state = {"v2_works": False}

    def load(spec: str):
        loads.append(spec)
        if spec == "v2" and not state["v2_works"]:
            raise OSError("model.bin is truncated")
        return good if spec == "v1" else fixed

    clock = Clock()
    holder = ModelHolder(load, lambda: wanted[0], on_broken=broken.append, clock=clock)
    assert holder.get() is good
    wanted[0] = "v2"  # a promotion that wrote a broken folder
    assert holder.refresh() is False and holder.get() is good
    assert len(broken) == 1 and "truncated" in broken[0].error
    # Between jobs every few seconds: no reload until the pause is over, no second alert.
    for _ in range(10):
        clock.now += 1
        assert holder.refresh() is False
    assert loads == ["v1", "v2"]
    clock.now = FIRST_RETRY_SECONDS + 0.1
    assert holder.refresh() is False
    assert loads == ["v1", "v2", "v2"] and len(broken) == 1
    assert holder.failure is not None and holder.failure.attempts == 2
    # The pause doubles; once the folder is fixed the next retry swaps.
    state["v2_works"] = True
    clock.now += FIRST_RETRY_SECONDS  # not yet: 2 x the first pause
    assert holder.refresh() is False
    clock.now += FIRST_RETRY_SECONDS
    assert holder.refresh() is True and holder.get() is fixed and holder.failure is None


def test_rate_limiter_counts_per_user_within_the_window() -> None:
    limiter = RateLimiter(limit=2, window=60)
    assert limiter.hit(1, now=0) == 0 and limiter.hit(1, now=1) == 0
    assert limiter.hit(1, now=2) == pytest.approx(58)
    assert limiter.hit(2, now=2) == 0  # other users are not affected
    assert limiter.hit(1, now=60.5) == 0  # the first event left the window


def test_rate_limiter_tells_once_per_stretch_and_forgets_quiet_users() -> None:
    limiter = RateLimiter(limit=1, window=60)
    limiter.hit(1, now=0)
    wait = limiter.hit(1, now=10)
    assert limiter.notice_due(1, wait, now=10)
    assert not limiter.notice_due(1, limiter.hit(1, now=20), now=20)
    limiter.hit(1, now=61)  # allowed again: a new stretch gets a new notice
    assert limiter.notice_due(1, limiter.hit(1, now=62), now=62)
    for user in range(2, SWEEP_EVERY + 2):  # one message each from many users, long ago
        limiter.hit(user, now=100)
    for _ in range(SWEEP_EVERY):  # ids never seen again do not stay in memory forever
        limiter.hit(0, now=1000)
    assert len(limiter._events) < 10 and not limiter._told_until


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (MediaBytes(b"", "voice"), "empty"),
        (MediaBytes(b"ffconcat version 1.0\nfile secret.ogg\n", "document"), "corrupt"),
        (MediaBytes(b"\x00" * 4000, "voice"), "corrupt"),
        (MediaLink("https://example.com/video.mp4"), "not_allowed_host"),
        (MediaLink("https://www.youtube.com/playlist?list=PL123"), "playlist"),
    ],
)
def test_the_pipeline_refuses_bad_input_with_the_users_message(
    tmp_path: Path, source, reason: str
) -> None:
    transcriber = FakeTranscriber()
    rig = build_rig(tmp_path, transcriber)
    with pytest.raises(InputRejected) as refused:
        rig.pipeline.run(source)
    assert refused.value.reason == reason
    expected = {**messages.AUDIO_ERRORS, **messages.LINK_ERRORS}[reason]
    assert refused.value.message.startswith(expected)
    assert transcriber.calls == 0


def test_the_pipeline_transcribes_a_local_file_with_progress(tmp_path: Path) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(text="ciao"))
    path = tmp_path / "nota.wav"
    path.write_bytes(tone_wav(2.0))
    stages: list[tuple[str, float | None]] = []
    result = rig.pipeline.run(LocalFile(path), progress=lambda s, f: stages.append((s.value, f)))
    assert result.transcription.text == "ciao" and result.source_kind == "file"
    assert result.audio.duration == pytest.approx(2.0, abs=0.01)
    assert stages[0] == ("transcribe", 0.0) and stages[-1] == ("transcribe", 1.0)


def test_retention_purges_old_uncorrected_audio(tmp_path: Path) -> None:
    from storage import repository
    from storage.privacy import purge_uncorrected_audio

    rig = build_rig(tmp_path, FakeTranscriber())
    result = rig.pipeline.run(MediaBytes(tone_wav(), "voice"))
    ref = rig.store.put(result.audio.samples)
    old = datetime.now(UTC) - timedelta(days=40)
    with rig.db.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        repository.add_transcription(
            uow.session, source_kind="voice", user_id=1, audio=ref, text="x", now=old
        )
        uow.commit()
    with rig.db.unit_of_work() as uow:
        purged = purge_uncorrected_audio(uow.session, rig.store, datetime.now(UTC) - timedelta(30))
        uow.commit()
    assert purged == 1 and not rig.store.exists(ref.sha256)
