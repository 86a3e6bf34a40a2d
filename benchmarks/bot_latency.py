"""What the bot adds on top of the model: latency per voice note, and a burst of 20 users.

The real bot (``bot.app.build_application``, python-telegram-bot's HTTP stack, the durable
job queue, storage, hashtags) runs in-process against the loopback Bot API emulator
(``tests/support/telegram_emulator.py``), with the packaged whisper-base (CTranslate2) and the
bot's default settings (beam 5, one worker).

1. Voice notes (OGG/Opus of espeak-ng Italian) of about 5, 10 and 30 s: the time from
   the update reaching the Bot API to the final reply, next to the plain model time on the
   same audio (decode + transcribe, no bot); their ratio is the bot's overhead.
2. 20 users send a 5 s voice note at the same moment: every one must be answered; per-user
   latency, time to the last answer, the event loop's lag (a ticker task that asks to wake
   every 50 ms and records how late it wakes), and the process's peak memory (RSS).

    .venv/bin/python benchmarks/bot_latency.py [--runs 3] [--users 20] [--workers 1]

Writes ``benchmarks/results/bot_latency.json`` and ``bot_latency.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

MODEL_SPEC = "packaged:whisper-base"
CLIP_SECONDS = (5.0, 10.0, 30.0)
DEFAULT_RUNS = 3
DEFAULT_USERS = 20
BURST_CLIP_SECONDS = 5.0
TICK_SECONDS = 0.05
REPLY_TIMEOUT = 180.0
FIRST_USER_ID = 10_000
RESULT_NAME = "bot_latency"
PAGE_BYTES = 4096


@dataclass(frozen=True)
class Clip:
    seconds: float  # the audio's real duration
    ogg: bytes
    text: str


def _opus(speech: _common.Speech, workdir: Path, name: str) -> bytes:
    wav = _common.write_wav(speech.samples, workdir / f"{name}.wav")
    ogg = workdir / f"{name}.ogg"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "libopus",
         "-b:a", "32k", str(ogg)],
        check=True,
    )  # fmt: skip
    return ogg.read_bytes()


def _clips(workdir: Path) -> dict[float, Clip]:
    clips = {}
    for target in CLIP_SECONDS:
        speech = _common.italian_speech(target, workdir / f"speech-{target:.0f}")
        clips[target] = Clip(
            speech.duration, _opus(speech, workdir, f"clip{target:.0f}"), speech.text
        )
    return clips


def _rss_mib() -> float:
    """The process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * PAGE_BYTES / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class LoopMonitor:
    """A ticker on the event loop: how late it wakes is how long the loop was blocked."""

    def __init__(self, interval: float = TICK_SECONDS) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self.peak_rss = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, time.perf_counter() - started - self.interval))
            self.peak_rss = max(self.peak_rss, _rss_mib())

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def summary(self) -> dict[str, float]:
        lags = sorted(self.lags) or [0.0]
        return {
            "ticks": len(self.lags),
            "median_ms": round(statistics.median(lags) * 1000, 1),
            "p99_ms": round(lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000, 1),
            "max_ms": round(lags[-1] * 1000, 1),
        }


def _plain_model_seconds(transcriber: object, clip: Clip, runs: int) -> _common.Timing:
    from model.asr.audio import decode_audio
    from model.asr.transcription import TranscribeOptions

    options = TranscribeOptions(language="it", beam_size=5)

    def run() -> str:
        audio = decode_audio(clip.ogg)
        return transcriber.transcribe(audio.samples, options=options).text  # type: ignore[attr-defined]

    return _common.time_runs(run, runs=runs, warmup=1)


def _final_reply(bot, user_id: int, message_id: int):
    from tests.support.bot_harness import is_status_text

    for message in bot.emu.messages(user_id):
        if message.reply_to == message_id and not is_status_text(message.content):
            return message
    return None


async def _one_voice_note(bot, user_id: int, clip: Clip) -> float:
    started = time.perf_counter()
    sent = bot.emu.send_voice(user_id=user_id, data=clip.ogg, duration=round(clip.seconds))
    try:
        await bot.emu.async_wait_for(
            lambda: _final_reply(bot, user_id, sent["message_id"]), timeout=REPLY_TIMEOUT
        )
    except AssertionError as exc:
        raise RuntimeError(f"no reply: {exc}; {bot.texts(user_id)}; {bot.jobs()}") from None
    return time.perf_counter() - started


async def _bot_latencies(
    data_dir: Path, transcriber: object, clips: dict[float, Clip], runs: int, workers: int
) -> dict[float, _common.Timing]:
    from tests.support.bot_harness import running_bot

    timings: dict[float, _common.Timing] = {}
    user = FIRST_USER_ID
    async with running_bot(data_dir, transcriber, workers=workers) as bot:
        for target, clip in clips.items():
            warm = await _one_voice_note(bot, user, clip)
            seconds = []
            for _ in range(runs):
                user += 1  # a fresh user each time: no rate limit in the way
                seconds.append(await _one_voice_note(bot, user, clip))
            timings[target] = _common.Timing(tuple(seconds), (warm,))
    return timings


async def _burst(
    data_dir: Path, transcriber: object, clip: Clip, users: int, workers: int
) -> dict[str, object]:
    from tests.support.bot_harness import running_bot

    async with running_bot(data_dir, transcriber, workers=workers) as bot:
        await _one_voice_note(bot, FIRST_USER_ID - 1, clip)  # warm the path
        rss_before = _rss_mib()
        monitor = LoopMonitor()
        monitor.start()
        ids = range(FIRST_USER_ID, FIRST_USER_ID + users)
        started = time.perf_counter()
        sent = {user: bot.emu.send_voice(user_id=user, data=clip.ogg, duration=5) for user in ids}
        answered_at: dict[int, float] = {}

        def all_answered() -> bool:
            for user, message in sent.items():
                if user not in answered_at and _final_reply(bot, user, message["message_id"]):
                    answered_at[user] = time.perf_counter() - started
            return len(answered_at) == users

        await bot.emu.async_wait_for(all_answered, timeout=REPLY_TIMEOUT)
        total = time.perf_counter() - started
        await monitor.stop()
        jobs = bot.jobs()
        latencies = sorted(answered_at.values())
        return {
            "users": users,
            "workers": workers,
            "clip_seconds": round(clip.seconds, 2),
            "answered": len(answered_at),
            "jobs_done": sum(job.status == "done" for job in jobs) - 1,  # minus the warm-up
            "all_answered_s": round(total, 2),
            "latency_s": {
                "min": round(latencies[0], 2),
                "median": round(statistics.median(latencies), 2),
                "max": round(latencies[-1], 2),
            },
            "event_loop_lag": monitor.summary(),
            "rss_mib": {
                "before_burst": round(rss_before, 1),
                "peak_during_burst": round(monitor.peak_rss, 1),
                "process_peak": round(_peak_rss_mib(), 1),
            },
        }


def _markdown(data: dict[str, object]) -> str:
    rows = [
        [
            f"{row['audio_seconds']:.1f}",
            f"{row['model_median_s']:.2f}",
            f"{row['bot_median_s']:.2f}",
            f"{row['overhead_s']:+.2f}",
            f"{row['ratio']:.2f}",
        ]
        for row in data["voice_notes"]  # type: ignore[union-attr]
    ]
    burst = data["burst"]
    machine = data["machine"]
    lines = [
        "# Bot latency (in-process bot, loopback Bot API emulator)\n",
        f"Model {MODEL_SPEC} (CTranslate2 {data['compute_type']}), beam 5, "
        f"{data['workers']} worker(s); median of {data['runs']} runs after a warm-up. "
        f"Machine: {machine['cpu']} x{machine['cpu_count']}, load "  # type: ignore[index]
        f"{machine['load_average_1_5_15']} at start.\n",  # type: ignore[index]
        "## One voice note: update -> final reply, next to the plain model\n",
        "Plain model = decode the OGG + transcribe (no bot). Bot = from the update reaching "
        "the Bot API to the transcript with hashtags in the chat (getUpdates, status "
        "messages, getFile + download, decode, transcribe, tags, FLAC + database, reply).\n",
        _common.markdown_table(["audio s", "model s", "bot s", "bot - model", "bot / model"], rows),
        f"## {burst['users']} users at once ({burst['clip_seconds']} s voice notes)\n",  # type: ignore[index]
        _common.markdown_table(
            ["", "value"],
            [
                ["answered", f"{burst['answered']} / {burst['users']}"],  # type: ignore[index]
                ["all answered after", f"{burst['all_answered_s']} s"],  # type: ignore[index]
                [
                    "latency min / median / max",
                    "{min} / {median} / {max} s".format(**burst["latency_s"]),
                ],  # type: ignore[index]
                [
                    "event-loop lag median / p99 / max",
                    "{median_ms} / {p99_ms} / {max_ms} ms".format(**burst["event_loop_lag"]),
                ],  # type: ignore[index]
                [
                    "RSS before / peak during burst",
                    "{before_burst} / {peak_during_burst} MiB".format(**burst["rss_mib"]),
                ],  # type: ignore[index]
            ],
        ),
        "\nThe queue serialises transcriptions (one worker): the last user waits for the "
        "19 before; the event loop stays responsive because decoding and transcription run "
        "in the worker thread pool.\n",
    ]
    return "\n".join(lines)


async def _main_async(args: argparse.Namespace) -> dict[str, object]:
    from model.asr.sources import load_transcriber

    machine = _common.machine_info()
    with tempfile.TemporaryDirectory(prefix="bot-latency-") as tmp:
        workdir = Path(tmp)
        clips = _clips(workdir)
        transcriber = await asyncio.to_thread(
            load_transcriber, MODEL_SPEC, engine="ct2", cache_dir=args.cache_dir
        )
        plain = {t: _plain_model_seconds(transcriber, c, args.runs) for t, c in clips.items()}
        bot = await _bot_latencies(workdir / "bot", transcriber, clips, args.runs, args.workers)
        burst = await _burst(
            workdir / "burst", transcriber, clips[BURST_CLIP_SECONDS], args.users, args.workers
        )
    rows = []
    for target, clip in clips.items():
        model_s, bot_s = plain[target].median, bot[target].median
        rows.append(
            {
                "audio_seconds": round(clip.seconds, 2),
                "model_median_s": round(model_s, 3),
                "bot_median_s": round(bot_s, 3),
                "overhead_s": round(bot_s - model_s, 3),
                "ratio": round(bot_s / model_s, 3),
                "model": plain[target].as_dict(),
                "bot": bot[target].as_dict(),
            }
        )
    return {
        "machine": machine,
        "model": MODEL_SPEC,
        "compute_type": getattr(transcriber, "compute_type", None),
        "runs": args.runs,
        "workers": args.workers,
        "voice_notes": rows,
        "burst": burst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    args = parser.parse_args()
    data = asyncio.run(_main_async(args))
    json_path, md_path = _common.write_results(RESULT_NAME, data, _markdown(data))
    print(_markdown(data))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
