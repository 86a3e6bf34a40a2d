"""The process's Prometheus metrics, in one registry per process (built once by the
composition root and handed to the services that record into it).

Counters and histograms are per process (Prometheus sums them across processes). The
queue gauges and the training-run counts are read from the shared database when scraped,
so every process (a front, a worker) reports the same queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.ops.throttled_alert import ThrottledAlert

log = logging.getLogger(__name__)

PREFIX = "whisper_it"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Outcomes of a job as the user sees it (``whisper_it_jobs_total{outcome}``).
OUTCOME_DONE = "done"
OUTCOME_REJECTED = "rejected"  # bad input: the user got a reason (too long, not audio, ...)
OUTCOME_FAILED = "failed"  # a crash: the user got the internal-error message
OUTCOME_DISCARDED = "discarded"  # forgotten meanwhile, or another worker took it over

# Seconds of work per transcription, and of audio: a voice note to a long video.
TRANSCRIPTION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
AUDIO_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)
# While the database is down, each scrape fails to read it: one warning per this long.
DATABASE_DOWN_WARNING_SECONDS = 600.0


@dataclass(frozen=True)
class QueueSnapshot:
    """What the shared job queue looks like now (read at scrape time)."""

    depth: int  # jobs waiting for a worker
    oldest_age_seconds: float  # how long the oldest waiting job has waited; 0 if none
    training_runs: dict[str, int]  # finished training runs by the gate's decision


class _DatabaseCollector(Collector):
    """Gauges and counts read from the shared database when Prometheus scrapes. While the
    database cannot be read, only ``whisper_it_database_up 0``: the per-process metrics
    still go out, with a 200."""

    def __init__(self, read: Callable[[], QueueSnapshot]) -> None:
        self._read = read
        self._down_warning = ThrottledAlert(DATABASE_DOWN_WARNING_SECONDS)

    def describe(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        # Names only: without it, registering would call collect (and read the database).
        yield _database_up(None)
        yield from _queue_families(None)

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        try:
            snapshot = self._read()
        except Exception as exc:
            if self._down_warning.due():
                log.warning("metrics: the database cannot be read (%s)", type(exc).__name__)
            yield _database_up(0)
            return
        yield _database_up(1)
        yield from _queue_families(snapshot)


def _database_up(value: int | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_database_up", "Whether the shared database could be read (1) or not (0)", value
    )


def _queue_families(
    snapshot: QueueSnapshot | None,
) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
    """The queue gauges and training counts; with no snapshot, their names only."""
    depth = None if snapshot is None else snapshot.depth
    age = None if snapshot is None else snapshot.oldest_age_seconds
    yield GaugeMetricFamily(f"{PREFIX}_queue_depth", "Jobs waiting for a worker", value=depth)
    yield GaugeMetricFamily(
        f"{PREFIX}_oldest_job_age_seconds", "How long the oldest waiting job has waited", value=age
    )
    runs = CounterMetricFamily(
        f"{PREFIX}_training_runs",
        "Finished training runs by the gate's decision (promoted, refused, failed)",
        labels=["decision"],
    )
    for decision, count in sorted((snapshot.training_runs if snapshot else {}).items()):
        runs.add_metric([decision], count)
    yield runs


class Metrics:
    """Every metric a whisper-it process exports."""

    def __init__(self, *, read_database: Callable[[], QueueSnapshot] | None = None) -> None:
        """``read_database``: the queue gauges and training counts, read at each scrape."""
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.jobs = Counter(
            f"{PREFIX}_jobs", "Jobs concluded by this process", ["outcome"], registry=registry
        )
        self.transcription_seconds = Histogram(
            f"{PREFIX}_transcription_seconds",
            "Model time per transcription",
            buckets=TRANSCRIPTION_BUCKETS,
            registry=registry,
        )
        self.audio_seconds = Histogram(
            f"{PREFIX}_audio_seconds",
            "Duration of the audio transcribed",
            buckets=AUDIO_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Jobs decoded together in one model call",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.telegram_retries = Counter(
            f"{PREFIX}_telegram_retries",
            "Bot API calls repeated after a 429 'retry after' answer",
            ["method"],
            registry=registry,
        )
        self.model_info = Gauge(
            f"{PREFIX}_model_info",
            "The model this process serves (1)",
            ["version"],
            registry=registry,
        )
        self._model_version: str | None = None
        if read_database is not None:
            self.registry.register(_DatabaseCollector(read_database))

    # --- recording --------------------------------------------------------------------

    def job_concluded(self, outcome: str) -> None:
        self.jobs.labels(outcome=outcome).inc()

    def transcribed(self, *, elapsed: float, audio_seconds: float, model: str) -> None:
        self.transcription_seconds.observe(elapsed)
        self.audio_seconds.observe(audio_seconds)
        self.serving(model)

    def serving(self, version: str) -> None:
        """Record the model now served (one label value at a time)."""
        if version == self._model_version:
            return
        self.model_info.clear()
        self.model_info.labels(version=version).set(1)
        self._model_version = version

    def retried(self, method: str) -> None:
        self.telegram_retries.labels(method=method).inc()

    # --- exporting --------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format. Blocking (it may read the database): call it from a
        worker thread."""
        return generate_latest(self.registry)


def age_seconds(since: datetime | None, now: datetime | None = None) -> float:
    """Seconds since ``since`` (naive datetimes are UTC, as the database stores them)."""
    if since is None:
        return 0.0
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - since).total_seconds())
