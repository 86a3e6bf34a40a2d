"""The one transcription pipeline: a media source in, a tagged transcript out.

Both front ends are thin adapters over it: the bot's worker (a Telegram file in memory,
or read in place from a local Bot API server, or a link) and ``whisper-it transcribe`` (a
local path or a link).
Every rule about media lives here once: fetch a link within its limits, decode within the
audio limits, pick the decoding path for the clip's length, transcribe with the serving
model, add hashtags. Expected failures come out as one exception, ``InputRejected``, that
already carries the user's Italian message.

Synchronous and CPU-bound: callers run it in a worker thread, never on an event loop.
No ``telegram`` import here.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot import messages
from bot.model_holder import ModelHolder
from model.asr.audio import AudioError, AudioLimits, DecodedAudio, decode_audio
from model.asr.routing import DecodePath, choose_route
from model.asr.transcription import DEFAULT_OPTIONS, Segment, TranscribeOptions, Transcription
from model.media.links import LinkError, parse_link
from model.media.youtube import DownloadLimits, DownloadProgress, download_audio
from model.tagging.tags import Tagger, format_hashtags
from storage.audio_store import pcm_sha256, to_pcm16

log = logging.getLogger(__name__)

TEMP_PREFIX = "whisper-it-"
LINK_CANCELLED = "cancelled"  # model.media.youtube's reason for a download stopped by cancel


class Stage(enum.Enum):
    DOWNLOAD = "download"
    TRANSCRIBE = "transcribe"


# (stage, fraction done or None when unknown)
ProgressSink = Callable[[Stage, float | None], None]


# --- sources -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaBytes:
    """A Telegram file: its bytes, or (local Bot API server) the path of the server's copy."""

    data: bytes | Path
    source_kind: str  # storage's source kinds: voice, audio, video, video_note, document
    source_ref: str | None = None


@dataclass(frozen=True)
class LocalFile:
    path: Path


@dataclass(frozen=True)
class MediaLink:
    url: str


MediaSource = MediaBytes | LocalFile | MediaLink


@dataclass(frozen=True)
class LinkInfo:
    url: str
    video_id: str | None
    title: str | None


@dataclass(frozen=True)
class PipelineResult:
    transcription: Transcription
    audio: DecodedAudio
    hashtags: tuple[str, ...]
    source_kind: str
    source_ref: str | None
    link: LinkInfo | None = None
    reused: bool = False  # answered from storage (``recall``): the model never ran


@dataclass(frozen=True, kw_only=True)
class Recalled:
    """A transcript found in storage for audio the serving model already transcribed."""

    text: str
    language: str
    segments: tuple[Segment, ...]
    hashtags: tuple[str, ...]


# What ``fetch`` gives: the decoded audio, its source kind and reference, the link's facts.
Fetched = tuple[DecodedAudio, str, str | None, LinkInfo | None]

# (SHA-256 of the audio's 16-bit PCM, the serving model's name) -> a stored transcript.
Recall = Callable[[str, str], Recalled | None]


class Cancelled(Exception):
    """The job's ``cancel`` event was set: the pipeline stopped where it was."""


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled


class InputRejected(Exception):
    """Input the pipeline refuses (damaged, too long, a foreign link, ...): ``message`` is
    the Italian text for the user, ``reason`` the machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- the pipeline ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PipelineLimits:
    audio: AudioLimits
    # Downloads from links may be bigger than Telegram's uploads.
    download: DownloadLimits


class TranscriptionPipeline:
    def __init__(
        self,
        *,
        models: ModelHolder,
        limits: PipelineLimits,
        options: TranscribeOptions,
        tagger: Tagger | None = None,
        max_hashtags: int = 5,
        url_hosts: frozenset[str] = frozenset(),
        work_dir: Path | None = None,
    ) -> None:
        self.models = models
        self.limits = limits
        self.options = options
        self.tagger = tagger
        self.max_hashtags = max_hashtags
        self.url_hosts = url_hosts
        self.work_dir = work_dir

    def run(
        self,
        source: MediaSource,
        *,
        progress: ProgressSink | None = None,
        chunk_batch: int | None = None,
        with_tags: bool = True,
        timestamps: bool = False,
        recall: Recall | None = None,
        cancel: threading.Event | None = None,
        hotwords: str | None = None,
    ) -> PipelineResult:
        """Fetch, decode, transcribe and (unless told not to) tag ``source``. Segment
        timings come with ``timestamps`` (subtitles) and always for links. Audio that
        ``recall`` finds already transcribed by the serving model is not transcribed again
        (its stored hashtags come with it). Setting ``cancel`` stops it between stages
        and at the next progress report (``Cancelled``). ``hotwords``: the sender's
        vocabulary (``bot.vocabulary``)."""
        progress = _cancellable(progress, cancel)
        audio, kind, ref, link = self.fetch(source, progress=progress, cancel=cancel)
        check_cancel(cancel)
        remembered = self.remembered(audio, recall, replace(self.options, hotwords=hotwords))
        if remembered is not None:
            transcription, hashtags = remembered
            return PipelineResult(transcription, audio, hashtags, kind, ref, link, reused=True)
        transcription = self.transcribe(
            audio,
            progress=progress,
            chunk_batch=chunk_batch,
            short_path=link is None and not timestamps,
            hotwords=hotwords,
        )
        check_cancel(cancel)
        hashtags = self.hashtags(transcription.text) if with_tags else ()
        return PipelineResult(transcription, audio, hashtags, kind, ref, link)

    def run_batch(
        self, sources: Sequence[MediaSource], *, recall: Recall | None = None
    ) -> list[PipelineResult | Exception]:
        """Several sources at once, without tags: short clips are decoded together in one
        model call. One result per source, in order: a result, or the exception that
        source raised (``InputRejected`` for bad input); one never fails the others.
        Audio ``recall`` finds already transcribed is answered from storage."""
        results: list[PipelineResult | Exception | None] = []
        pending: dict[int, Fetched] = {}
        for index, source in enumerate(sources):
            try:
                fetched = self.fetch(source)
                found = self.remembered(fetched[0], recall)
            except Exception as exc:
                results.append(exc)
                continue
            if found is None:
                results.append(None)
                pending[index] = fetched
                continue
            audio, kind, ref, link = fetched
            results.append(PipelineResult(found[0], audio, found[1], kind, ref, link, reused=True))
        transcriptions = self._transcribe_together(pending)
        for index, (audio, kind, ref, link) in pending.items():
            transcription = transcriptions[index]
            if isinstance(transcription, Exception):
                results[index] = transcription
            else:
                results[index] = PipelineResult(transcription, audio, (), kind, ref, link)
        return [result for result in results if result is not None]

    def _transcribe_together(
        self, pending: dict[int, Fetched]
    ) -> dict[int, Transcription | Exception]:
        """The short clips in one model call, the others one by one on their own path."""
        short = [index for index, item in pending.items() if _is_short(item)]
        done: dict[int, Transcription | Exception] = {}
        if short:
            model = self.models.get()
            clips = [pending[index][0].samples for index in short]
            done.update(
                zip(short, model.transcribe_batch(clips, options=self.options), strict=True)
            )
        for index, (audio, *_rest) in pending.items():
            if index not in done:
                try:
                    done[index] = self.transcribe(audio, short_path=False)
                except Exception as exc:
                    done[index] = exc
        return done

    def remembered(
        self, audio: DecodedAudio, recall: Recall | None, options: TranscribeOptions | None = None
    ) -> tuple[Transcription, tuple[str, ...]] | None:
        """The serving model's stored transcript of ``audio`` and its hashtags, if any."""
        if recall is None:
            return None
        model = self.models.get()
        found = recall(pcm_sha256(to_pcm16(audio.samples)), model.model_name)
        if found is None:
            return None
        transcription = Transcription(
            text=found.text,
            segments=found.segments,
            language=found.language,
            duration=audio.duration,
            model=model.model_name,
            engine=model.engine,
            elapsed=0.0,
            options=options or self.options,
        )
        return transcription, found.hashtags

    def fetch(
        self,
        source: MediaSource,
        *,
        progress: ProgressSink | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[DecodedAudio, str, str | None, LinkInfo | None]:
        """The decoded audio of ``source``, its kind and reference, and the link's details."""
        if isinstance(source, MediaBytes):
            audio = self._decode(source.data, self.limits.audio)
            return audio, source.source_kind, source.source_ref, None
        if isinstance(source, LocalFile):
            return self._decode(source.path, self.limits.audio), "file", source.path.name, None
        return self._fetch_link(source.url, progress, cancel)

    def _fetch_link(
        self, url: str, progress: ProgressSink | None, cancel: threading.Event | None = None
    ) -> tuple[DecodedAudio, str, str | None, LinkInfo]:
        def on_download(update: DownloadProgress) -> None:
            if progress is not None:
                # yt-dlp's hook stops a cancelled download itself (``cancel``), cleanly.
                with contextlib.suppress(Cancelled):
                    progress(Stage.DOWNLOAD, update.fraction)

        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        # The download lives in a temporary folder that is removed whatever happens.
        folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.work_dir))
        try:
            try:
                link = parse_link(url, extra_hosts=self.url_hosts)
                media = download_audio(
                    link, folder, limits=self.limits.download, progress=on_download, cancel=cancel
                )
            except LinkError as exc:
                if exc.reason == LINK_CANCELLED:
                    raise Cancelled from exc
                raise InputRejected(
                    exc.reason,
                    messages.link_error(exc.reason, max_seconds=self.limits.audio.max_seconds),
                ) from exc
            limits = replace(self.limits.audio, max_bytes=self.limits.download.max_bytes)
            audio = self._decode(media.path, limits)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        info = LinkInfo(
            url=media.webpage_url or link.url, video_id=media.video_id, title=media.title
        )
        return audio, "youtube", media.video_id or media.webpage_url, info

    def remove_stale_downloads(self, older_than_seconds: float) -> int:
        """Download folders older than that: a killed process's (its clean-up never ran)."""
        if self.work_dir is None or not self.work_dir.is_dir():
            return 0
        cutoff, removed = time.time() - older_than_seconds, 0
        for folder in self.work_dir.glob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return removed

    def _decode(self, source: bytes | Path, limits: AudioLimits) -> DecodedAudio:
        try:
            return decode_audio(source, limits=limits)
        except AudioError as exc:
            raise InputRejected(
                exc.reason,
                messages.audio_error(
                    exc.reason, max_seconds=limits.max_seconds, max_mb=limits.max_bytes / 2**20
                ),
            ) from exc

    def transcribe(
        self,
        audio: DecodedAudio,
        *,
        progress: ProgressSink | None = None,
        chunk_batch: int | None = None,
        short_path: bool = True,
        hotwords: str | None = None,
    ) -> Transcription:
        """Transcribe with the serving model, on the path ``model.asr.routing`` chooses: a
        clip that fits one window takes the short path (text only, no timestamps) unless
        ``short_path`` is off (links want subtitle timings) or a chunk batch is forced."""
        base_options = replace(self.options, hotwords=hotwords)
        route = choose_route(
            audio.duration,
            base_options,
            short_clips=short_path,
            chunk_batch=chunk_batch,
            skip_silence=True,
        )
        if route.path == DecodePath.SHORT_CLIPS:
            model = self.models.get()
            if progress is not None:
                progress(Stage.TRANSCRIBE, 0.0)
            (result,) = model.transcribe_batch([audio.samples], options=base_options)
            if isinstance(result, Exception):
                raise result
            if progress is not None:
                progress(Stage.TRANSCRIBE, 1.0)
            return result
        options = route.options

        def on_progress(fraction: float) -> None:
            if progress is not None:
                progress(Stage.TRANSCRIBE, fraction)

        model = self.models.get()  # loads it on first use: may raise before any progress
        on_progress(0.0)
        transcription = model.transcribe(audio.samples, options=options, progress=on_progress)
        on_progress(1.0)
        return transcription

    def hashtags(self, text: str) -> tuple[str, ...]:
        if self.tagger is None or not text.strip():
            return ()
        try:
            raw = self.tagger.tags(text)
        except Exception:  # tags are a garnish: never lose a transcript over them
            log.exception("tagging failed")
            return ()
        return tuple(format_hashtags(raw, max_tags=self.max_hashtags))


def _cancellable(
    progress: ProgressSink | None, cancel: threading.Event | None
) -> ProgressSink | None:
    """``progress`` that first stops the work if ``cancel`` was set."""
    if cancel is None:
        return progress

    def report(stage: Stage, fraction: float | None) -> None:
        check_cancel(cancel)
        if progress is not None:
            progress(stage, fraction)

    return report


def _is_short(fetched: Fetched) -> bool:
    audio, _kind, _ref, link = fetched
    return (
        link is None
        and choose_route(audio.duration, DEFAULT_OPTIONS).path == DecodePath.SHORT_CLIPS
    )
