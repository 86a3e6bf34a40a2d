"""The downloader process (``model.media.download_process``): one link, then exit.

Run by the parent as ``python -c "... from model.media.download_child import main; main()"``.
It reads one request frame (``model.framing``), runs yt-dlp through
``model.media.youtube.download_in_process`` (netguard guards every connection here as in
any process), streams ``progress`` frames and ends with one ``done`` or ``error`` frame.

No external program may run here: an audit hook refuses every process start (subprocess,
exec, spawn, system) except the JavaScript runtime yt-dlp needs for YouTube. So whatever a
page offers, yt-dlp cannot hand a URL to ffmpeg, mpv, rtmpdump or aria2c, whose
connections netguard would never see. A download that failed after such a refusal is
reported as ``needs_program``.

The child ends itself when the parent goes away (its stdin closes) or when the deadline
passes; the parent kills it anyway at its own deadline, on /forget and at shutdown.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path
from typing import BinaryIO

from model.framing import read_frame, write_frame

# Audit events that start another program (https://docs.python.org/3/library/audit_events.html).
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn"}
)
# The programs yt-dlp hands downloads to: a failure after refusing one is "needs_program".
# (Other refused starts, such as ctypes' ldconfig/gcc library probes, change nothing.)
DOWNLOAD_PROGRAMS = frozenset(
    {"ffmpeg", "ffprobe", "avconv", "mpv", "mplayer", "rtmpdump", "aria2c", "axel", "curl",
     "wget", "http"}
)  # fmt: skip
# Seconds past the download deadline after which the child exits on its own.
SELF_KILL_GRACE_SECONDS = 5.0


class ExternalProgramRefused(PermissionError):
    """A program start refused by the audit hook (an OSError: yt-dlp treats it as absent)."""


class ProgramGuard:
    """The audit hook: refuses every program except ``allowed`` (full paths)."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = frozenset(os.path.realpath(path) for path in allowed)
        self.refused: list[str] = []

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        if event not in PROCESS_EVENTS:
            return
        program = _program(event, args)
        if program is not None and os.path.realpath(program) in self.allowed:
            return
        self.refused.append(os.path.basename(program or "?"))
        raise ExternalProgramRefused(f"starting {program!r} is not allowed here")


def _program(event: str, args: tuple[object, ...]) -> str | None:
    if event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        if executable:
            return os.fsdecode(executable)  # type: ignore[arg-type]
        if isinstance(argv, str | bytes):
            return os.fsdecode(argv).split()[0] if argv else None
        first = next(iter(argv), None) if argv else None  # type: ignore[call-overload]
        return os.fsdecode(first) if first is not None else None
    if event == "os.system":
        return None  # a shell command line: never allowed
    return os.fsdecode(args[0]) if args and args[0] is not None else None  # type: ignore[arg-type]


def _allowed_programs() -> frozenset[str]:
    from model.media.js_runtime import find_js_runtime

    runtime = find_js_runtime()
    return frozenset({str(runtime.path)}) if runtime is not None else frozenset()


def _exit_when_orphaned(source: BinaryIO) -> None:
    while source.read(1):
        pass
    os._exit(1)  # the parent closed the pipe: it no longer wants the download


def _serve(request: dict[str, object], out: BinaryIO, guard: ProgramGuard) -> None:
    from model.media.links import LinkError, VideoLink
    from model.media.youtube import DownloadLimits, DownloadProgress, download_in_process

    raw_link = dict(request["link"])  # type: ignore[call-overload]
    raw_link["allowed_hosts"] = frozenset(raw_link.get("allowed_hosts") or ())
    link = VideoLink(**raw_link)
    limits = DownloadLimits(**request["limits"])  # type: ignore[arg-type]

    def on_progress(update: DownloadProgress) -> None:
        write_frame(out, {"kind": "progress", **update.__dict__})

    try:
        media = download_in_process(
            link, Path(str(request["dest_dir"])), limits=limits, progress=on_progress
        )
    except LinkError as exc:
        reason = exc.reason
        downloaders = sorted(DOWNLOAD_PROGRAMS.intersection(guard.refused))
        if downloaders and reason not in ("cancelled", "timeout"):
            reason, exc.detail = "needs_program", f"refused: {', '.join(downloaders)}"
        write_frame(out, {"kind": "error", "reason": reason, "detail": exc.detail})
        return
    write_frame(
        out,
        {
            "kind": "done",
            "path": str(media.path),
            "title": media.title,
            "duration": media.duration,
            "video_id": media.video_id,
            "webpage_url": media.webpage_url,
        },
    )


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the protocol owns the real stdout
    source = os.fdopen(os.dup(0), "rb")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file of a hostile page
    guard = ProgramGuard(_allowed_programs())
    sys.addaudithook(guard)
    frame = read_frame(source)
    if frame is None:
        return
    request, _payload = frame
    threading.Thread(target=_exit_when_orphaned, args=(source,), daemon=True).start()
    timeout = float(request["limits"]["timeout_seconds"])  # type: ignore[index]
    threading.Timer(timeout + SELF_KILL_GRACE_SECONDS, os._exit, args=(1,)).start()
    _serve(request, out, guard)
    out.flush()
    os._exit(0)  # the self-kill timer must not keep the process alive
