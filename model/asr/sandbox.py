"""Decoding untrusted media in a child process with memory, CPU and wall-clock limits.

FFmpeg does real work on a file before any limit of ``model.asr.audio`` can look at it:
an MP4 whose sample tables declare millions of samples makes the demuxer build its index
inside ``av.open`` (gigabytes from a 2 KB file), and a resampler built for an absurd rate
burns seconds of CPU. Those limits are enforced by the kernel instead, on a decoder
process (``model.asr.decoder_child``) that holds nothing of value:

- address space (RLIMIT_AS, default 1 GiB), set by the child after its imports: an
  allocation past it fails inside FFmpeg or numpy, which the child reports as damaged;
- CPU time (RLIMIT_CPU), per request: a few seconds to open the file, then
  ``cpu_per_audio_second`` times its declared duration (or the longest accepted one);
- wall-clock time, enforced here: the same budget, after which the child is killed.

A child that dies, overruns or answers nonsense is a damaged file (``CorruptAudioError``),
never a crash of the caller. Children are reused (a warm pool: starting one costs about as
much as decoding a voice note) until one fails, then replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from model.asr.limits import AudioLimits, SandboxLimits
from model.framing import FrameError, FrameReader, FrameTimeout, write_frame

# Seconds a child may take to start (imports) and to open a file before it says "probed".
STARTUP_SECONDS = 30.0
# Requests one child serves before it is replaced (bounds heap fragmentation).
MAX_REQUESTS_PER_CHILD = 200
# Seconds a request may take to open and probe its file, on top of ``extra_seconds``.
PROBE_SECONDS = 5.0
# The largest answer accepted from a child: 4 hours of 16 kHz float32 samples.
MAX_ANSWER_BYTES = 4 * 3600 * 16_000 * 4
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
CHILD_ENVIRONMENT: dict[str, str] = {"LC_ALL": "C.UTF-8"}
_CHILD_CODE = (
    "import sys; sys.path.insert(0, sys.argv[2]); from model.asr.decoder_child import main; main()"
)


class SandboxFailure(Exception):
    """The child died, overran a limit or broke the protocol. ``peak_rss`` in bytes."""

    def __init__(self, message: str, *, peak_rss: int | None = None) -> None:
        super().__init__(message)
        self.peak_rss = peak_rss


@dataclass(frozen=True)
class SandboxResult:
    """What the child answered: samples, or an ``AudioError`` reason and message."""

    samples: np.ndarray | None
    reason: str | None = None
    message: str = ""
    retire: bool = False  # the child is exiting (out of memory): do not reuse it
    peak_rss: int | None = None  # the child's peak resident memory so far, in bytes


def peak_rss_bytes(pid: int) -> int | None:
    """The peak resident memory of a live process (``VmHWM``), or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class _Child:
    """One decoder process and the protocol's parent side."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.requests = 0
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, str(limits.memory_bytes), _PACKAGE_ROOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            # An empty environment: the bot's token and database URL stay out of reach of
            # a decoder a hostile file might take over (the package path is an argument).
            env=CHILD_ENVIRONMENT,
        )
        assert self.process.stdout is not None
        self._reader = FrameReader(self.process.stdout.fileno(), max_payload=MAX_ANSWER_BYTES)
        self._ready = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]

    def decode(self, path: str | None, data: bytes, limits: AudioLimits) -> SandboxResult:
        deadline = time.monotonic() + STARTUP_SECONDS
        if not self._ready:
            self._expect(self._read_frame(deadline)[0], "ready")
            self._ready = True
        self.requests += 1
        self._send(path, data, limits)
        deadline = time.monotonic() + PROBE_SECONDS + self.limits.extra_seconds
        header, payload = self._read_frame(deadline)
        if header.get("kind") == "probed":
            declared = header.get("declared")
            basis = float(declared) if isinstance(declared, int | float) else limits.max_seconds
            budget = self.limits.cpu_per_audio_second * min(basis, limits.max_seconds)
            deadline = time.monotonic() + self.limits.extra_seconds + budget
            header, payload = self._read_frame(deadline)
        if header.get("kind") == "ok":
            if len(payload) % 4:
                raise self._failure("a partial sample")
            return SandboxResult(np.frombuffer(bytearray(payload), dtype=np.float32))
        if header.get("kind") == "error":
            return SandboxResult(
                None,
                str(header.get("reason")),
                str(header.get("message")),
                retire=bool(header.get("retire")),
            )
        raise self._failure(f"unexpected answer {header.get('kind')!r}")

    def _send(self, path: str | None, data: bytes, limits: AudioLimits) -> None:
        from dataclasses import asdict

        raw = {k: v for k, v in asdict(limits).items() if k != "sandbox"}
        raw["cpu_per_audio_second"] = self.limits.cpu_per_audio_second
        raw["extra_seconds"] = self.limits.extra_seconds
        try:
            assert self.process.stdin is not None
            write_frame(self.process.stdin, {"path": path, "limits": raw}, data)
        except (BrokenPipeError, OSError) as exc:
            raise self._failure("the decoder stopped reading") from exc

    def _expect(self, header: dict[str, object], kind: str) -> None:
        if header.get("kind") != kind:
            raise self._failure(f"expected {kind!r}, got {header.get('kind')!r}")

    def _failure(self, message: str) -> SandboxFailure:
        peak = peak_rss_bytes(self.process.pid)
        self.kill()
        return SandboxFailure(message, peak_rss=peak)

    def _read_frame(self, deadline: float) -> tuple[dict[str, object], bytes]:
        try:
            return self._reader.read(deadline)
        except FrameTimeout:
            raise self._failure("the decoder ran out of time") from None
        except FrameError as exc:
            raise self._failure(f"the decoder stopped ({exc})") from None


class DecoderPool:
    """Warm decoder processes shared by threads; ``close`` kills them all."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False

    def warm(self) -> None:
        """Start the idle children now (without waiting for them), so the first note
        does not pay for a process start."""
        with self._lock:
            while not self._closed and len(self._idle) < self.limits.pool_size:
                self._idle.append(_Child(self.limits))

    def decode(self, path: str | None, data: bytes, limits: AudioLimits) -> SandboxResult:
        """Decode in a child; ``SandboxFailure`` if it died, overran or misbehaved."""
        child = self._take()
        healthy = False
        try:
            result = child.decode(path, data, limits)
            healthy = child.alive and not result.retire
            return replace(result, peak_rss=peak_rss_bytes(child.process.pid))
        finally:
            self._give_back(child, healthy=healthy)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
        for child in children:
            child.kill()

    def _take(self) -> _Child:
        with self._lock:
            if self._closed:
                raise SandboxFailure("the decoder pool is closed")
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    break
                child.kill()
            else:
                child = _Child(self.limits)
            self._busy.add(child)
            return child

    def _give_back(self, child: _Child, *, healthy: bool) -> None:
        with self._lock:
            self._busy.discard(child)
            keep = (
                healthy
                and not self._closed
                and child.requests < MAX_REQUESTS_PER_CHILD
                and len(self._idle) < self.limits.pool_size
            )
            if keep:
                self._idle.append(child)
                return
            if not self._closed and len(self._idle) < self.limits.pool_size:
                # Start the replacement now: it imports while nobody waits for it.
                self._idle.append(_Child(self.limits))
        child.kill()


_SHARED: dict[SandboxLimits, DecoderPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(limits: SandboxLimits) -> DecoderPool:
    """The process-wide pool for ``limits``, created on first use, closed at exit."""
    with _SHARED_LOCK:
        pool = _SHARED.get(limits)
        if pool is None:
            if not _SHARED:
                atexit.register(close_shared_pools)
            pool = _SHARED[limits] = DecoderPool(limits)
        return pool


def close_shared_pools() -> None:
    """Kill every decoder process of this process (shutdown; safe to call twice)."""
    with _SHARED_LOCK:
        pools = list(_SHARED.values())
        _SHARED.clear()
    for pool in pools:
        pool.close()
