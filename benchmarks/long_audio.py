"""Long audio, end to end: a 10-minute video through yt-dlp, the decoder and both CT2 paths.

Ten minutes (``--minutes``) of espeak-ng Italian sentences in varied voices with short pauses
are muxed into an MP4 (black video, AAC audio) and served with a page embedding it by the
loopback media server of the tests. Then, as the bot does for a link:

1. ``model.media.links.parse_link`` + ``model.media.youtube.download_audio`` (yt-dlp's generic
   extractor, 127.0.0.1 passed explicitly as an extra host): median seconds of ``--runs``
   downloads after a warm-up;
2. ``model.asr.audio.decode_audio`` to 16 kHz mono: median likewise;
3. transcription by the CT2 engine (packaged whisper-base), once per path on that same audio:
   the fast path (faster-whisper's batched pipeline, ``chunk_batch=8``) and the plain path
   (sequential 30 s windows), same beam size; seconds, RTF, the speed-up and each path's WER
   against the text spoken.

    .venv/bin/python benchmarks/long_audio.py [--minutes 10] [--runs 3]

Writes ``benchmarks/results/long_audio.json`` and ``long_audio.md`` (a run with
``--minutes`` other than 10 writes ``long_audio-{minutes}min.*`` so the reference numbers stay).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

MODEL_SPEC = "packaged:whisper-base"
DEFAULT_MINUTES = 10.0
DEFAULT_RUNS = 3  # download and decode are cheap: repeat them; transcription runs once
BEAM_SIZE = 5  # the serving default
FAST_BATCH_SIZE = 8
WARMUP_SECONDS = 5.0  # a short slice through both paths loads the VAD model and the pipeline
AUDIO_BITRATE = "64k"
RESULT_NAME = "long_audio"
# Generous limits: the benchmark measures speed, the limits are tested elsewhere.
DOWNLOAD_TIMEOUT_SECONDS = 300.0
MAX_BYTES = 512 * 1024 * 1024


def _make_video(speech: _common.Speech, site: Path) -> Path:
    from tests.support.media_server import PAGE_NAME, VIDEO_NAME, VIDEO_SIZE, video_page_html

    site.mkdir(parents=True, exist_ok=True)
    wav = _common.write_wav(speech.samples, site.parent / "speech.wav")
    video = site / VIDEO_NAME
    subprocess.run(
        [
            "ffmpeg", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", f"color=c=black:s={VIDEO_SIZE}:r=10",
            "-i", str(wav),
            "-shortest",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", AUDIO_BITRATE,
            "-movflags", "+faststart",
            str(video),
        ],
        check=True,
    )  # fmt: skip
    wav.unlink()
    (site / PAGE_NAME).write_text(video_page_html(VIDEO_NAME), encoding="utf-8")
    return video


def _download_and_decode(site: Path, work: Path, *, max_seconds: float, runs: int) -> dict:
    from model.asr.audio import AudioLimits, decode_audio
    from model.media.links import parse_link
    from model.media.youtube import DownloadLimits, download_audio
    from tests.support.media_server import LOOPBACK_HOST, PAGE_NAME, serve_directory

    limits = DownloadLimits(
        max_seconds=max_seconds, max_bytes=MAX_BYTES, timeout_seconds=DOWNLOAD_TIMEOUT_SECONDS
    )
    downloads: list[Path] = []

    def download() -> object:
        media = download_audio(link, work / f"dl{len(downloads)}", limits=limits)
        downloads.append(media.path)
        return media

    with serve_directory(site) as server:
        link = parse_link(server.url(PAGE_NAME), extra_hosts=frozenset({LOOPBACK_HOST}))
        download_timing = _common.time_runs(download, runs=runs)
    media_path = downloads[-1]
    audio_limits = AudioLimits(max_seconds=max_seconds, max_bytes=MAX_BYTES)
    decode_timing = _common.time_runs(
        lambda: decode_audio(media_path, limits=audio_limits), runs=runs
    )
    return {
        "url": link.url,
        "media": media_path,
        "download": download_timing,
        "decode": decode_timing,
        "samples": decode_timing.result.samples,
    }


def _transcribe_both(samples: object, reference: str, cache_dir: Path) -> dict[str, object]:
    from model.asr.normalize import error_rates
    from model.asr.sources import load_transcriber
    from model.asr.transcription import TranscribeOptions

    started = time.perf_counter()
    engine = load_transcriber(MODEL_SPEC, engine="ct2", cache_dir=cache_dir)
    load_s = time.perf_counter() - started
    paths = {
        "fast": TranscribeOptions(beam_size=BEAM_SIZE, chunk_batch=FAST_BATCH_SIZE),
        "plain": TranscribeOptions(beam_size=BEAM_SIZE, chunk_batch=0),
    }
    warm = samples[: int(WARMUP_SECONDS * _common.SAMPLE_RATE)]  # type: ignore[index]
    for options in paths.values():
        engine.transcribe(warm, options=options)  # type: ignore[attr-defined]
    out: dict[str, object] = {
        "engine": {
            "name": "ct2",
            "device": engine.device,  # type: ignore[attr-defined]
            "compute_type": engine.compute_type,  # type: ignore[attr-defined]
            "load_s": round(load_s, 2),
        }
    }
    for name, options in paths.items():
        load_before = _common.load_average()
        result = engine.transcribe(samples, options=options)  # type: ignore[attr-defined]
        rates = error_rates([reference], [result.text])
        out[name] = {
            "chunk_batch": options.chunk_batch,
            "beam_size": options.beam_size,
            "seconds": round(result.elapsed, 2),
            "rtf": round(result.elapsed / result.duration, 4),
            "wer": round(rates.wer, 4),
            "cer": round(rates.cer, 4),
            "substitutions": rates.substitutions,
            "deletions": rates.deletions,
            "insertions": rates.insertions,
            "segments": len(result.segments),
            "load_average_before": load_before,
            "load_average_after": _common.load_average(),
            "text": result.text,
        }
        print(
            f"{name}: {result.elapsed:.1f} s, RTF {result.elapsed / result.duration:.3f}, "
            f"WER {rates.wer:.1%}",
            flush=True,
        )
    return out


def run(*, minutes: float, runs: int, cache_dir: Path, results_dir: Path) -> dict[str, object]:
    info = _common.machine_info()
    target = minutes * 60
    with tempfile.TemporaryDirectory(prefix="bench-long-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        speech = _common.italian_speech(target, work / "speech")
        video = _make_video(speech, work / "site")
        prepare_s = time.perf_counter() - started
        print(f"prepared {speech.duration:.0f} s of speech in {prepare_s:.0f} s", flush=True)
        fetched = _download_and_decode(
            work / "site", work / "downloads", max_seconds=target + 60, runs=runs
        )
        video_bytes = video.stat().st_size
        media_bytes = fetched["media"].stat().st_size
    samples = fetched["samples"]
    duration = samples.size / _common.SAMPLE_RATE
    download, decode = fetched["download"], fetched["decode"]
    print(f"download {download.median:.2f} s, decode {decode.median:.2f} s", flush=True)
    transcribed = _transcribe_both(samples, speech.text, cache_dir)
    fast, plain = transcribed["fast"], transcribed["plain"]
    data: dict[str, object] = {
        "benchmark": RESULT_NAME,
        "model": MODEL_SPEC,
        "machine": info,
        "audio": {
            "target_minutes": minutes,
            "speech_s": round(speech.duration, 2),
            "decoded_s": round(duration, 2),
            "sentences": speech.sentences,
            "reference_words": len(speech.text.split()),
            "video_bytes": video_bytes,
            "downloaded_bytes": media_bytes,
            "prepare_s": round(prepare_s, 1),
        },
        "url": fetched["url"],
        "download": {**download.as_dict(), "runs": runs},
        "decode": {**decode.as_dict(), "runs": runs},
        "transcription": transcribed,
        "speedup_fast_over_plain": round(plain["seconds"] / fast["seconds"], 2),  # type: ignore[index]
        "end_to_end_fast_s": round(download.median + decode.median + fast["seconds"], 2),  # type: ignore[index]
        "load_average_at_end": _common.load_average(),
    }
    name = RESULT_NAME if minutes == DEFAULT_MINUTES else f"{RESULT_NAME}-{minutes:g}min"
    paths = _common.write_results(name, data, _markdown(data), results_dir=results_dir)
    print("wrote", *(str(p) for p in paths))
    return data


def _markdown(data: dict[str, object]) -> str:
    audio, machine = data["audio"], data["machine"]
    tr = data["transcription"]
    engine, fast, plain = tr["engine"], tr["fast"], tr["plain"]  # type: ignore[index]
    download, decode = data["download"], data["decode"]
    seconds = audio["decoded_s"]  # type: ignore[index]
    rows = [
        ["download (yt-dlp, loopback)", f"{download['median_s']:.2f}", "", ""],  # type: ignore[index]
        ["decode (PyAV → 16 kHz)", f"{decode['median_s']:.2f}", "", ""],  # type: ignore[index]
        [
            f"transcribe, fast path (batched, batch {fast['chunk_batch']})",
            f"{fast['seconds']:.1f}",
            f"{fast['rtf']:.3f}",
            f"{fast['wer']:.1%}",
        ],
        [
            "transcribe, plain path (sequential)",
            f"{plain['seconds']:.1f}",
            f"{plain['rtf']:.3f}",
            f"{plain['wer']:.1%}",
        ],
        [
            "end to end, fast path",
            f"{data['end_to_end_fast_s']:.1f}",
            f"{data['end_to_end_fast_s'] / seconds:.3f}",  # type: ignore[operator]
            "",
        ],
    ]
    return (
        f"# Long audio: {seconds / 60:.1f} minutes of Italian speech from a link\n\n"  # type: ignore[operator]
        f"`{data['model']}` through CT2 {engine['compute_type']} on {engine['device']}, "
        f"beam {fast['beam_size']}; {audio['sentences']} espeak-ng sentences "  # type: ignore[index]
        f"({audio['reference_words']} words) in varied voices, an MP4 of "  # type: ignore[index]
        f"{audio['video_bytes'] / 1e6:.1f} MB served on 127.0.0.1. Download and decode: median "  # type: ignore[index]
        f"of {download['runs']} after a warm-up; transcription: one run per path after a "  # type: ignore[index]
        "short warm-up. RTF = seconds per second of audio.\n\n"
        + _common.markdown_table(["step", "seconds", "RTF", "WER"], rows)
        + f"\nSpeed-up of the fast path: **{data['speedup_fast_over_plain']}×**. "
        f"Deleted words: fast {fast['deletions']}, plain {plain['deletions']} "
        f"of {audio['reference_words']}.\n\n"  # type: ignore[index]
        f"{machine['cpu_count']} × {machine['cpu']}, "  # type: ignore[index]
        f"load average {machine['load_average_1_5_15']} at start, "  # type: ignore[index]
        f"{data['load_average_at_end']} at end (shared machine: expect noise); "
        f"{machine['timestamp_utc']}, commit {machine['git_commit']}.\n"  # type: ignore[index]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="download/decode runs")
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument("--results-dir", type=Path, default=_common.RESULTS_DIR)
    args = parser.parse_args(argv)
    # yt-dlp's "falling back on generic extractor" warnings are expected here.
    logging.getLogger("model.media.youtube").setLevel(logging.ERROR)
    run(
        minutes=args.minutes, runs=args.runs, cache_dir=args.cache_dir, results_dir=args.results_dir
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
