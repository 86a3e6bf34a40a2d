"""The decoder process of the sandbox (``model.asr.sandbox``): decode one file per request.

Run as ``python -c "from model.asr.decoder_child import main; main()"`` by the parent,
which talks to it over stdin/stdout with a small framed protocol that carries no code:
each frame is a JSON header line followed by ``header["size"]`` raw bytes. The parent never
unpickles anything from here, so a child taken over by a hostile file can lie about the
result, but not run code in the parent.

Request (parent -> child): ``{"path": str | null, "limits": {...}, "size": n}`` then the
file's ``n`` bytes when ``path`` is null. Replies (child -> parent): ``{"kind": "probed",
"declared": seconds | null}`` once the container is open (the parent then sets its wall-clock
deadline from the duration), then ``{"kind": "ok", "size": n}`` followed by ``n`` bytes of
float32 samples, or ``{"kind": "error", "reason": ..., "message": ...}``.

Limits: after the imports (which need more address space than a decode is allowed) the
child caps its own address space (RLIMIT_AS) and, per request, its CPU time (RLIMIT_CPU,
soft limit: the kernel sends SIGXCPU, which kills it). The parent adds the wall-clock kill.
"""

from __future__ import annotations

import io
import os
import resource
import sys
from typing import BinaryIO

from model.framing import read_frame, write_frame

# Fixed CPU seconds a request may use before its duration is known (opening, probing).
PROBE_CPU_SECONDS = 5.0


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _allow_cpu(seconds: float) -> None:
    """Let this process use ``seconds`` more CPU time (soft limit; the hard one stays)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(_cpu_used() + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _serve_one(request: dict[str, object], payload: bytes, out: BinaryIO) -> None:
    from model.asr import audio

    raw_limits = dict(request["limits"])  # type: ignore[call-overload]
    cpu_per_second = float(raw_limits.pop("cpu_per_audio_second"))
    extra_seconds = float(raw_limits.pop("extra_seconds"))
    limits = audio.AudioLimits(**raw_limits)
    _allow_cpu(PROBE_CPU_SECONDS + extra_seconds)

    def on_probe(declared: float | None) -> None:
        basis = declared if declared is not None else limits.max_seconds
        _allow_cpu(extra_seconds + cpu_per_second * min(basis, limits.max_seconds))
        write_frame(out, {"kind": "probed", "declared": declared})

    path = request.get("path")
    try:
        if path is not None:
            with open(str(path), "rb") as opened:
                samples = audio.decode_in_process(opened, limits, on_probe=on_probe)
        else:
            samples = audio.decode_in_process(io.BytesIO(payload), limits, on_probe=on_probe)
    except audio.AudioError as exc:
        write_frame(out, {"kind": "error", "reason": exc.reason, "message": str(exc)})
        return
    except OSError as exc:
        write_frame(out, {"kind": "error", "reason": "corrupt", "message": exc.strerror or ""})
        return
    write_frame(out, {"kind": "ok"}, memoryview(samples).cast("B"))


def main() -> None:
    """Serve requests until stdin closes; any unexpected failure ends the process."""
    import av  # noqa: F401  (imported before the address-space cap: it maps large libraries)
    import numpy  # noqa: F401

    from model.asr import audio  # noqa: F401

    memory = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    # The protocol owns the real stdout; anything else printing goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = os.fdopen(os.dup(0), "rb")
    # SIGXCPU and crashes dump core by default: no core file of a hostile decode anywhere.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    write_frame(out, {"kind": "ready"})
    while (frame := read_frame(source)) is not None:
        request, payload = frame
        try:
            _serve_one(request, payload, out)
        except MemoryError:
            header = {"kind": "error", "reason": "corrupt", "message": "out of memory"}
            write_frame(out, {**header, "retire": True})
            return  # the heap may be fragmented: let the parent start a fresh child
