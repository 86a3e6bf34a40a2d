"""Serving: batched short voice notes, and which decoding path suits a note of each length.

Side by side in one run, on the packaged whisper-base through the CT2 engine (int8 on CPU),
beam 5, espeak-ng Italian in varied voices:

1. **Short clips, model level.** ``--clips`` notes of 3-7 s decoded one by one with plain
   faster-whisper (``WhisperModel.transcribe``: the serial plain model, 1.00×), then through
   ``CT2Transcriber.transcribe_batch`` in batches of 1 and ``--batch-sizes``: seconds for
   all clips (median of ``--runs``, contenders interleaved), the ratio to the plain model,
   WER and how many extra (fallback) decodes the batched path made.
2. **A single note by duration** (``--durations``, 5 ... 90 s; ``--per-duration`` different
   notes each): plain faster-whisper ``transcribe``, the project's sequential path, the
   long-audio fast path (faster-whisper's batched pipeline, batch 8) and the short batched
   path (only up to one 30 s window): seconds, CPU seconds, ratios to plain, WER. The
   route the project takes (``model.asr.routing.SHORT_CLIP_SECONDS``,
   ``model.asr.engines.LONG_AUDIO_SECONDS``) is chosen from this table.
3. **Bursts through the bot** (``--burst-sizes`` 20 and 50 notes through the Bot API
   emulator; a front with ``WHISPER_IT_WORKERS=0`` and ``--burst-workers`` 1 or 2
   ``whisper-it worker`` processes; ``WHISPER_IT_BATCH_SIZE`` 1 or 8 with
   ``WHISPER_IT_BATCH_WAIT_MS`` 50): time to the last reply, median latency, WER, as
   ratios to the serial plain model. See ``bursts_through_the_bot``.

    .venv/bin/python benchmarks/serving.py [--parts short durations bursts] [--quick]

~40 minutes on 2 busy cores. Writes ``benchmarks/results/serving.json`` and ``serving.md``
(``--quick``: ``serving-quick.*``; ``--results-dir`` or ``--name`` for partial runs, which
leave out the parts not run).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

MODEL_SPEC = "packaged:whisper-base"
RESULT_NAME = "serving"
PARTS = ("short", "durations", "bursts")
BEAM_SIZE = 5  # the serving default
LANGUAGE = "it"
DEFAULT_CLIPS = 16
SHORT_CLIP_TARGET_SECONDS = (5.0, 7.0)  # voice-note lengths, alternating
# A note is at least one sentence: where one sentence is longer, the target grows by this.
TARGET_STEP_SECONDS = 2.0
DEFAULT_BATCH_SIZES = (4, 8, 16)
DEFAULT_RUNS = 2
DEFAULT_DURATIONS = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0)
DEFAULT_PER_DURATION = 2
FAST_PATH_BATCH_SIZE = 8  # model.asr.engines.DEFAULT_CHUNK_BATCH, the bot's fast path
# Each note of a duration starts elsewhere in the sentence pool, so notes differ.
SENTENCE_STRIDE = 13
QUICK = {
    "clips": 8,
    "batch_sizes": (4, 8),
    "runs": 1,
    "durations": (5.0, 30.0, 45.0),
    "burst_sizes": (20,),
}
# Bursts: short voice notes (the 3.5 s notes), a handful of different ones cycled
# over the users; each user sends one, so no per-user limit gets in the way.
BURST_SIZES = (20, 50)
BURST_WORKERS = (1, 2)
BURST_BATCH_SIZE = 8  # the bot's default WHISPER_IT_BATCH_SIZE
BATCH_WAIT_MS = 50  # the bot's default WHISPER_IT_BATCH_WAIT_MS
BURST_NOTE_TARGET_SECONDS = 4.0
BURST_DISTINCT_NOTES = 5
BURST_FIRST_SENTENCE = 20  # other sentences than the short-clip set
OPUS_BITRATE = "32k"
PLAIN_RUNS = 2
FIRST_BURST_USER = 10_000
WARMUP_USER = 9_000
WORKER_START_TIMEOUT = 180.0
BURST_TIMEOUT = 600.0


# --------------------------------------------------------------------------- contenders


def _plain(whisper: Any) -> Callable[[Any], str]:
    """Plain faster-whisper, as anyone would call it: language and beam size only."""

    def transcribe(samples: Any) -> str:
        segments, _info = whisper.transcribe(samples, language=LANGUAGE, beam_size=BEAM_SIZE)
        return " ".join(s.text.strip() for s in segments).strip()

    return transcribe


def _texts(results: Sequence[object]) -> list[str]:
    from model.asr.transcription import Transcription

    texts = []
    for result in results:
        if not isinstance(result, Transcription):
            raise RuntimeError(f"a clip failed: {result!r}")
        texts.append(result.text)
    return texts


# --------------------------------------------------------------------------- 1. short clips


def _note(target: float, work: Path, start: int) -> _common.Speech:
    while True:
        try:
            return _common.italian_speech(target, work, start=start)
        except ValueError:  # the first sentence alone is longer than the target
            target += TARGET_STEP_SECONDS


def short_clips(engine: Any, work: Path, *, clips: int, batch_sizes: Sequence[int], runs: int):
    from model.asr.normalize import error_rates
    from model.asr.transcription import TranscribeOptions

    notes = [
        _note(SHORT_CLIP_TARGET_SECONDS[i % len(SHORT_CLIP_TARGET_SECONDS)], work / f"s{i}", i)
        for i in range(clips)
    ]
    samples = [note.samples for note in notes]
    references = [note.text for note in notes]
    options = TranscribeOptions(language=LANGUAGE, beam_size=BEAM_SIZE)
    plain = _plain(engine._model)
    decoder = engine.short_clips

    def batched(size: int) -> Callable[[], list[str]]:
        def run() -> list[str]:
            out: list[object] = []
            for start in range(0, len(samples), size):
                out += engine.transcribe_batch(samples[start : start + size], options=options)
            return _texts(out)

        return run

    contenders: dict[str, Callable[[], list[str]]] = {
        "plain faster-whisper, one by one": lambda: [plain(s) for s in samples],
        "batched path, batch 1": batched(1),
        **{f"batched path, batch {size}": batched(size) for size in batch_sizes},
    }
    fallbacks_before = decoder.fallbacks
    # Warm-up: one clip through each (the first CTranslate2 calls allocate).
    plain(samples[0])
    engine.transcribe_batch(samples[:2], options=options)
    load_before = _common.load_average()
    timings = _common.time_interleaved(contenders, runs=runs, warmup=0)
    base = timings["plain faster-whisper, one by one"].median
    rows = []
    for name, timing in timings.items():
        rates = error_rates(references, timing.result)
        rows.append(
            {
                "way": name,
                **timing.as_dict(),
                "ratio_to_plain": round(base / timing.median, 2),
                "wer": round(rates.wer, 4),
                "cer": round(rates.cer, 4),
            }
        )
        print(
            f"{name}: {timing.median:.1f} s ({base / timing.median:.2f}×), WER {rates.wer:.1%}",
            flush=True,
        )
    return {
        "clips": clips,
        "audio_s": round(sum(note.duration for note in notes), 2),
        "clip_s": [round(note.duration, 2) for note in notes],
        "runs": runs,
        "rows": rows,
        # Every batched contender decodes every clip; extra decodes are fallback temperatures.
        "clips_redecoded_alone": decoder.fallbacks - fallbacks_before,
        "load_average_before": load_before,
        "load_average_after": _common.load_average(),
    }


# --------------------------------------------------------------------------- 2. by duration


@dataclass(frozen=True)
class DecodingPath:
    name: str
    applies: Callable[[float], bool]
    transcribe: Callable[[Any], str]


def by_duration(engine: Any, work: Path, *, durations: Sequence[float], per_duration: int):
    from model.asr.normalize import error_rates
    from model.asr.routing import (
        LONG_AUDIO_SECONDS,
        SHORT_CLIP_SECONDS,
        DecodePath,
        choose_route,
        fits_short_clip,
    )
    from model.asr.transcription import TranscribeOptions

    options = TranscribeOptions(language=LANGUAGE, beam_size=BEAM_SIZE)
    sequential = TranscribeOptions(language=LANGUAGE, beam_size=BEAM_SIZE, chunk_batch=0)
    fast = TranscribeOptions(
        language=LANGUAGE, beam_size=BEAM_SIZE, chunk_batch=FAST_PATH_BATCH_SIZE
    )
    paths = (
        DecodingPath("plain faster-whisper", lambda d: True, _plain(engine._model)),
        DecodingPath(
            "sequential", lambda d: True, lambda s: engine.transcribe(s, options=sequential).text
        ),
        DecodingPath(
            "fast path", lambda d: True, lambda s: engine.transcribe(s, options=fast).text
        ),
        DecodingPath(
            "short batched",
            fits_short_clip,
            lambda s: _texts(engine.transcribe_batch([s], options=options))[0],
        ),
    )

    def route(duration: float) -> str:
        names = {
            DecodePath.SHORT_CLIPS: "short batched",
            DecodePath.CHUNKED: "fast path",
            DecodePath.SEQUENTIAL: "sequential",
        }
        return names[choose_route(duration, options).path]

    warm = _common.italian_speech(5.0, work / "warm").samples
    for path in paths:  # loads the VAD model and the batched pipeline
        path.transcribe(warm)
    rows = []
    for target in durations:
        notes = [
            _common.italian_speech(target, work / f"d{target:g}-{k}", start=k * SENTENCE_STRIDE)
            for k in range(per_duration)
        ]
        references = [note.text for note in notes]
        actual = [note.duration for note in notes]
        cells: dict[str, dict[str, object]] = {}
        for path in paths:
            if not all(path.applies(d) for d in actual):
                continue
            seconds, cpu, texts = [], [], []
            for note in notes:
                started, cpu_started = time.perf_counter(), time.process_time()
                texts.append(path.transcribe(note.samples))
                seconds.append(time.perf_counter() - started)
                # CPU seconds of this process: less hurt by the other work on a shared machine.
                cpu.append(time.process_time() - cpu_started)
            rates = error_rates(references, texts)
            cells[path.name] = {
                "seconds": round(sum(seconds) / len(seconds), 3),
                "runs_s": [round(s, 3) for s in seconds],
                "cpu_seconds": round(sum(cpu) / len(cpu), 3),
                "wer": round(rates.wer, 4),
                "cer": round(rates.cer, 4),
                "deletions": rates.deletions,
                "insertions": rates.insertions,
            }
        base = cells["plain faster-whisper"]["seconds"]
        base_cpu = cells["plain faster-whisper"]["cpu_seconds"]
        for cell in cells.values():
            cell["ratio_to_plain"] = round(base / cell["seconds"], 2)  # type: ignore[operator]
            cell["cpu_ratio_to_plain"] = round(base_cpu / cell["cpu_seconds"], 2)  # type: ignore[operator]
        row = {
            "target_s": target,
            "audio_s": [round(d, 2) for d in actual],
            "words": sum(len(r.split()) for r in references),
            "route": route(max(actual)),
            "paths": cells,
            "load_average": _common.load_average(),
        }
        rows.append(row)
        print(
            f"{target:g} s: "
            + ", ".join(
                f"{name} {cell['seconds']:.2f} s WER {cell['wer']:.1%}"  # type: ignore[str-format]
                for name, cell in cells.items()
            ),
            flush=True,
        )
    return {
        "per_duration": per_duration,
        "fast_path_batch_size": FAST_PATH_BATCH_SIZE,
        "short_clip_seconds": SHORT_CLIP_SECONDS,
        "long_audio_seconds": LONG_AUDIO_SECONDS,
        "rows": rows,
    }


# --------------------------------------------------------------------------- 3. bursts


@dataclass(frozen=True)
class Note:
    ogg: bytes
    text: str
    seconds: float


@dataclass(frozen=True)
class BurstScenario:
    notes: int
    batch_size: int  # WHISPER_IT_BATCH_SIZE: 1 = batching off
    workers: int  # ``whisper-it worker`` processes

    @property
    def name(self) -> str:
        batching = f"batch {self.batch_size}" if self.batch_size > 1 else "batching off"
        return f"{self.notes} notes, {batching}, {self.workers} worker process(es)"


def _opus(speech: _common.Speech, work: Path) -> bytes:
    wav = _common.write_wav(speech.samples, work.with_suffix(".wav"))
    ogg = work.with_suffix(".ogg")
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "libopus",
         "-b:a", OPUS_BITRATE, str(ogg)],
        check=True,
    )  # fmt: skip
    return ogg.read_bytes()


def _burst_notes(work: Path, count: int) -> list[Note]:
    notes = []
    for i in range(count):
        speech = _note(BURST_NOTE_TARGET_SECONDS, work / f"burst{i}", BURST_FIRST_SENTENCE + i)
        notes.append(Note(_opus(speech, work / f"burst{i}"), speech.text, speech.duration))
    return notes


def _plain_note_seconds(engine: Any, notes: Sequence[Note], runs: int) -> list[float]:
    """Decode + plain faster-whisper ``transcribe`` of each note: the serial plain model."""
    from model.asr.audio import decode_audio

    plain = _plain(engine._model)
    return [
        _common.time_runs(lambda note=note: plain(decode_audio(note.ogg).samples), runs=runs).median
        for note in notes
    ]


def _final_reply(bot: Any, user_id: int, message_id: int) -> Any:
    from tests.support.bot_harness import is_status_text

    for message in bot.emu.messages(user_id):
        if message.reply_to == message_id and not is_status_text(message.content):
            return message
    return None


async def _wait_ready(logs: Path, workers: int) -> None:
    from tests.support.processes import worker_log

    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while worker_log(logs).count(" ready (") < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not start: {worker_log(logs)[-2000:]}")
        await asyncio.sleep(0.2)


async def _one_burst(
    scenario: BurstScenario, notes: Sequence[Note], work: Path, cache_dir: Path
) -> dict[str, object]:
    from model.asr.normalize import error_rates
    from tests.support.bot_harness import running_bot
    from tests.support.processes import processes, worker_env, worker_log

    data_dir = work / f"burst-{scenario.notes}-{scenario.batch_size}-{scenario.workers}"
    data_dir.mkdir(parents=True)
    front = {
        "workers": 0,  # the front only accepts jobs; the worker processes answer them
        "tagger": "off",
        "max_queued_jobs": scenario.notes + 10,
        "model_cache_dir": cache_dir,
    }
    async with running_bot(data_dir, None, **front) as bot:
        env = worker_env(
            bot.emu,
            data_dir,
            model_cache_dir=cache_dir,
            tagger="off",
            batch_size=scenario.batch_size,
            batch_wait_ms=BATCH_WAIT_MS,
        )
        command = [sys.executable, "-m", "bot", "worker"]
        with processes([command] * scenario.workers, env, data_dir):
            await _wait_ready(data_dir, scenario.workers)
            # One note per worker first, so each has decoded once before the clock starts.
            for w in range(scenario.workers):
                warm = notes[w % len(notes)]
                bot.emu.send_voice(user_id=WARMUP_USER + w, data=warm.ogg, duration=5)
            await bot.wait_for_jobs(scenario.workers, done=scenario.workers, timeout=240)
            users = range(FIRST_BURST_USER, FIRST_BURST_USER + scenario.notes)
            started = time.perf_counter()
            sent = {}
            for user in users:
                note = notes[user % len(notes)]
                sent[user] = bot.emu.send_voice(
                    user_id=user, data=note.ogg, duration=round(note.seconds)
                )
            answered: dict[int, float] = {}
            replies: dict[int, str] = {}

            def all_answered() -> bool:
                for user, message in sent.items():
                    if user in answered:
                        continue
                    reply = _final_reply(bot, user, message["message_id"])
                    if reply is not None:
                        answered[user] = time.perf_counter() - started
                        replies[user] = reply.content
                return len(answered) == len(sent)

            try:
                await bot.emu.async_wait_for(all_answered, timeout=BURST_TIMEOUT)
            except AssertionError as exc:
                raise RuntimeError(f"{exc}: {worker_log(data_dir)[-3000:]}") from None
        jobs = bot.jobs()
    latencies = sorted(answered.values())
    references = [notes[user % len(notes)].text for user in users]
    rates = error_rates(references, [replies[user] for user in users])
    return {
        "scenario": scenario.name,
        "notes": scenario.notes,
        "batch_size": scenario.batch_size,
        "worker_processes": scenario.workers,
        "answered": len(answered),
        "jobs_done": sum(job.status == "done" for job in jobs) - scenario.workers,
        "last_reply_s": round(latencies[-1], 2),
        "median_latency_s": round(statistics.median(latencies), 2),
        "first_reply_s": round(latencies[0], 2),
        "wer": round(rates.wer, 4),
        "load_average": _common.load_average(),
        "replies": [replies[user] for user in users],
    }


def bursts_through_the_bot(
    engine: Any,
    work: Path,
    *,
    sizes: Sequence[int],
    batch_size: int,
    worker_counts: Sequence[int],
    cache_dir: Path,
) -> dict[str, object]:
    """Bursts of voice notes through the Bot API emulator: a front with no local workers
    (``WHISPER_IT_WORKERS=0``) and 1 or 2 ``whisper-it worker`` processes on the same
    SQLite database, batching off (``WHISPER_IT_BATCH_SIZE=1``) or on (``batch_size``,
    ``WHISPER_IT_BATCH_WAIT_MS``); time to the last reply and median latency, as ratios to
    the serial plain model (each note's decode + plain faster-whisper ``transcribe``,
    summed over the burst), and WER of the replies."""
    notes = _burst_notes(work, BURST_DISTINCT_NOTES)
    plain = _plain_note_seconds(engine, notes, runs=PLAIN_RUNS)
    rows = []
    for size in sizes:
        serial = sum(
            plain[user % len(notes)] for user in range(FIRST_BURST_USER, FIRST_BURST_USER + size)
        )
        for workers in worker_counts:
            for batch in (1, batch_size):
                scenario = BurstScenario(size, batch, workers)
                row = asyncio.run(_one_burst(scenario, notes, work, cache_dir))
                row["serial_plain_s"] = round(serial, 2)
                row["last_reply_vs_serial_plain"] = round(row["last_reply_s"] / serial, 3)  # type: ignore[operator]
                rows.append(row)
                print(
                    f"{scenario.name}: last reply {row['last_reply_s']} s "
                    f"({row['last_reply_vs_serial_plain']} × serial plain {serial:.1f} s), "
                    f"median {row['median_latency_s']} s, WER {row['wer']:.1%}",
                    flush=True,
                )
    return {
        "status": "run",
        "note_s": [round(note.seconds, 2) for note in notes],
        "plain_note_s": [round(s, 3) for s in plain],
        "batch_wait_ms": BATCH_WAIT_MS,
        "rows": rows,
    }


# --------------------------------------------------------------------------- output


def _markdown(data: dict[str, Any]) -> str:
    machine, engine = data["machine"], data["engine"]
    head = (
        "# Serving: batched short voice notes, and the decoding path by note length\n\n"
        f"`{data['model']}` through CT2 {engine['compute_type']} on {engine['device']}, "
        f"beam {BEAM_SIZE}, espeak-ng Italian in varied voices. "
        f"{machine['cpu_count']} × {machine['cpu']}; load average "
        f"{machine['load_average_1_5_15']} at start, {data['load_average_at_end']} at end "
        f"(shared machine: compare ratios, not seconds); {machine['timestamp_utc']}, "
        f"commit {machine['git_commit']}.\n\n"
    )
    parts = [head]
    if data["short_clips"]:
        parts.append(_short_markdown(data["short_clips"]))
    if data["by_duration"]:
        parts.append(_sweep_markdown(data["by_duration"]))
    parts.append(_bursts_markdown(data["bursts"]))
    return "\n".join(parts)


def _short_markdown(short: dict[str, Any]) -> str:
    rows = [
        [
            r["way"],
            f"{r['median_s']:.2f}",
            f"{r['ratio_to_plain']:.2f}×",
            f"{r['wer']:.1%}",
            f"{r['cer']:.1%}",
        ]
        for r in short["rows"]
    ]
    return (
        f"## Short clips: {short['clips']} notes of {min(short['clip_s']):.1f}-"
        f"{max(short['clip_s']):.1f} s ({short['audio_s']:.0f} s in all)\n\n"
        f"Seconds for all clips, median of {short['runs']} (contenders interleaved); ratio = "
        "plain faster-whisper one by one / this (higher is faster).\n\n"
        + _common.markdown_table(["way of decoding", "seconds", "× plain", "WER", "CER"], rows)
        + "\nExtra decodes by the batched path beyond one beam search per clip (a fallback "
        "temperature for a looping clip, over all batched rows): "
        f"{short['clips_redecoded_alone']}.\n"
    )


def _sweep_markdown(sweep: dict[str, Any]) -> str:
    names = ("plain faster-whisper", "sequential", "fast path", "short batched")
    rows = []
    for row in sweep["rows"]:
        cells = []
        for name in names:
            cell = row["paths"].get(name)
            cells.append(
                "—"
                if cell is None
                else f"{cell['seconds']:.2f} s ({cell['ratio_to_plain']:.2f}×; CPU "
                f"{cell['cpu_ratio_to_plain']:.2f}×), {cell['wer']:.0%}"
            )
        audio = "/".join(f"{d:.1f}" for d in row["audio_s"])
        rows.append([f"{row['target_s']:g} s ({audio})", *cells, row["route"]])
    return (
        f"## A single note by duration ({sweep['per_duration']} notes each)\n\n"
        "Seconds per note (mean), × plain faster-whisper `transcribe` in wall-clock time and in "
        "this process's CPU time (higher is faster; CPU time is less hurt by other work on "
        "the machine), WER over the notes. Sequential: the project's plain path (no "
        "conditioning on previous text, bounded tokens). Fast path: faster-whisper's "
        "batched pipeline (VAD chunks), "
        f"batch {sweep['fast_path_batch_size']}. Short batched: one window, so ≤ 30 s only. "
        f"Route: what the project does now (short path up to {sweep['short_clip_seconds']:g} "
        f"s, fast path over {sweep['long_audio_seconds']:g} s).\n\n"
        + _common.markdown_table(["note", *names, "route"], rows)
    )


def _bursts_markdown(bursts: dict[str, Any]) -> str:
    title = "## Bursts of voice notes through the bot\n\n"
    if bursts.get("status") != "run":
        return title + f"{bursts.get('status', 'not run')}\n"
    rows = [
        [
            r["notes"],
            f"batch {r['batch_size']}" if r["batch_size"] > 1 else "off",
            r["worker_processes"],
            f"{r['last_reply_s']:.1f} s",
            f"{r['last_reply_vs_serial_plain']:.2f} (of {r['serial_plain_s']:.1f} s)",
            f"{r['median_latency_s']:.1f} s",
            f"{r['wer']:.1%}",
            f"{r['answered']}/{r['notes']}",
        ]
        for r in bursts["rows"]
    ]
    headers = [
        "burst",
        "batching",
        "worker processes",
        "last reply",
        "× serial plain",
        "median latency",
        "WER",
        "answered",
    ]
    return (
        title + "A front with no local workers (`WHISPER_IT_WORKERS=0`) and `whisper-it worker` "
        "processes on one SQLite database, the Bot API emulator on 127.0.0.1, tags off; "
        f"{len(bursts['note_s'])} different OGG/Opus notes of "
        f"{min(bursts['note_s']):.1f}-{max(bursts['note_s']):.1f} s cycled over the users, "
        "all sent at once after one warm-up note per worker; batching waits "
        f"{bursts['batch_wait_ms']} ms. Serial plain = the sum of each note's decode + plain "
        f"faster-whisper `transcribe` (median of {PLAIN_RUNS}: "
        f"{', '.join(f'{x:.2f}' for x in bursts['plain_note_s'])} s).\n\n"
        + _common.markdown_table(headers, rows)
    )


def run(
    *,
    parts: Sequence[str],
    clips: int,
    batch_sizes: Sequence[int],
    runs: int,
    durations: Sequence[float],
    per_duration: int,
    burst_sizes: Sequence[int],
    burst_workers: Sequence[int],
    cache_dir: Path,
    results_dir: Path,
    name: str,
) -> dict[str, Any]:
    from model.asr.sources import load_transcriber

    info = _common.machine_info()
    started = time.perf_counter()
    engine: Any = load_transcriber(MODEL_SPEC, engine="ct2", cache_dir=cache_dir)
    load_s = time.perf_counter() - started
    not_run = {"status": "not run (--parts)"}
    short, sweep, bursts = {}, {}, not_run
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        if "short" in parts:
            short = short_clips(engine, work, clips=clips, batch_sizes=batch_sizes, runs=runs)
        if "durations" in parts:
            sweep = by_duration(engine, work, durations=durations, per_duration=per_duration)
        if "bursts" in parts:
            bursts = bursts_through_the_bot(
                engine,
                work,
                sizes=burst_sizes,
                batch_size=BURST_BATCH_SIZE,
                worker_counts=burst_workers,
                cache_dir=cache_dir,
            )
    data: dict[str, Any] = {
        "benchmark": RESULT_NAME,
        "model": MODEL_SPEC,
        "machine": info,
        "engine": {
            "name": "ct2",
            "device": engine.device,
            "compute_type": engine.compute_type,
            "load_s": round(load_s, 2),
            "beam_size": BEAM_SIZE,
        },
        "short_clips": short,
        "by_duration": sweep,
        "bursts": bursts,
        "load_average_at_end": _common.load_average(),
    }
    paths = _common.write_results(name, data, _markdown(data), results_dir=results_dir)
    print("wrote", *(str(p) for p in paths))
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=DEFAULT_CLIPS)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(DEFAULT_BATCH_SIZES))
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--durations", type=float, nargs="+", default=list(DEFAULT_DURATIONS))
    parser.add_argument("--per-duration", type=int, default=DEFAULT_PER_DURATION)
    parser.add_argument("--burst-sizes", type=int, nargs="+", default=list(BURST_SIZES))
    parser.add_argument("--burst-workers", type=int, nargs="+", default=list(BURST_WORKERS))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--quick", action="store_true", help="fewer clips and durations")
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument("--results-dir", type=Path, default=_common.RESULTS_DIR)
    parser.add_argument("--name", default=None, help="result file name (default: serving)")
    args = parser.parse_args(argv)
    settings = {
        "clips": args.clips,
        "batch_sizes": tuple(args.batch_sizes),
        "runs": args.runs,
        "durations": tuple(args.durations),
        "burst_sizes": tuple(args.burst_sizes),
    }
    if args.quick:
        settings |= QUICK
    run(
        **settings,
        parts=args.parts,
        burst_workers=tuple(args.burst_workers),
        per_duration=1 if args.quick else args.per_duration,
        cache_dir=args.cache_dir,
        results_dir=args.results_dir,
        name=args.name or (f"{RESULT_NAME}-quick" if args.quick else RESULT_NAME),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
