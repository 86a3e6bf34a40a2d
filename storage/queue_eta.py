"""How long a queued job will wait, from measured throughput.

Throughput is measured, not configured: the audio seconds that recent finished jobs
carried per second their workers spent on them (answers from storage excluded: they say
nothing about the model). The wait of a queued job is the audio of the jobs ahead of it,
what is left of the running ones, and its own, over that throughput, shared among the
workers busy now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Job, JobStatus, Transcription, utcnow

RECENT_JOBS = 20
# Finished jobs looked at to find RECENT_JOBS that the model answered.
_SCANNED_JOBS = RECENT_JOBS * 3
# A job whose payload does not say how long its audio is (a link) counts this much.
UNKNOWN_AUDIO_SECONDS = 60.0


@dataclass(frozen=True)
class Throughput:
    audio_seconds_per_second: float
    jobs: int  # how many jobs it was measured on


def recent_throughput(session: Session, *, limit: int = RECENT_JOBS) -> Throughput | None:
    """Audio seconds per worker second over the last ``limit`` jobs the model answered;
    None before any."""
    rows = session.execute(
        select(Job.started_at, Job.finished_at, Transcription.audio_duration, Transcription.timings)
        .join(Transcription, Transcription.id == Job.transcription_id)
        .where(
            Job.status == JobStatus.DONE, Job.started_at.is_not(None), Job.finished_at.is_not(None)
        )
        .order_by(Job.finished_at.desc())
        .limit(_SCANNED_JOBS)
    ).all()
    audio = spent = 0.0
    used = 0
    for started, finished, duration, timings in rows:
        if not duration or not (timings or {}).get("transcribe"):
            continue  # answered from storage, or nothing measured
        seconds = (finished - started).total_seconds()
        if seconds <= 0:
            continue
        audio += duration
        spent += seconds
        used += 1
        if used == limit:
            break
    if used == 0:
        return None
    return Throughput(audio / spent, used)


def _audio_seconds(job: Job) -> float:
    duration = (job.payload or {}).get("duration")
    return float(duration) if duration else UNKNOWN_AUDIO_SECONDS


def estimate_wait(
    session: Session, job_id: int, throughput: Throughput, *, now: datetime | None = None
) -> float | None:
    """Seconds until ``job_id``'s answer, if it is still waiting; None otherwise."""
    job = session.get(Job, job_id)
    if job is None or job.status not in (JobStatus.PENDING, JobStatus.HELD):
        return None
    now = now or utcnow()
    rate = throughput.audio_seconds_per_second
    running = session.scalars(select(Job).where(Job.status == JobStatus.RUNNING)).all()
    waiting = Job.status.in_((JobStatus.PENDING, JobStatus.HELD))  # held: being announced
    ahead = session.scalars(select(Job).where(waiting, Job.id < job_id)).all()
    left = sum(
        max(0.0, _audio_seconds(j) / rate - (now - j.started_at).total_seconds())
        for j in running
        if j.started_at is not None
    )
    queued = sum(_audio_seconds(j) for j in ahead) + _audio_seconds(job)
    return (left + queued / rate) / max(1, len(running))
