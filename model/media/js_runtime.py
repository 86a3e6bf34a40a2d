"""The JavaScript runtime yt-dlp needs for real YouTube (NOTES §5).

Current yt-dlp solves YouTube's player challenges by running JavaScript (the ``yt-dlp-ejs``
scripts of its ``[default]`` extra) in an external runtime; without one, real YouTube links
fail. whisper-it depends on the ``deno`` wheel, which ships the runtime as a binary, so it
works out of the box. Found in order: the wheel's binary (``deno.find_deno_bin``), then a
``deno`` beside this interpreter or on PATH, then ``node``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

RuntimeName = Literal["deno", "node"]
# yt-dlp enables deno (looked up on PATH) when given no runtime: the same fallback here.
YT_DLP_DEFAULT_RUNTIME: RuntimeName = "deno"
VERSION_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class JsRuntime:
    name: RuntimeName
    path: Path
    source: str  # where it was found, in words: "deno wheel", "PATH", ...


def _deno_from_wheel() -> Path | None:
    try:
        from deno import find_deno_bin
    except ImportError:
        return None
    try:
        return Path(find_deno_bin())
    except (OSError, RuntimeError):  # FileNotFoundError: the wheel's binary is not there
        return None


def _beside_interpreter(name: str) -> Path | None:
    # A virtualenv's scripts folder need not be on PATH (the bot started by full path).
    candidate = Path(sys.executable).parent / name
    return candidate if candidate.is_file() else None


def _on_path(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


@functools.cache
def find_js_runtime() -> JsRuntime | None:
    """The runtime yt-dlp should use, or None when there is none on this machine."""
    deno = _deno_from_wheel()
    if deno is not None:
        return JsRuntime("deno", deno, "deno wheel")
    for locate, source in ((_beside_interpreter, "virtualenv"), (_on_path, "PATH")):
        deno = locate("deno")
        if deno is not None:
            return JsRuntime("deno", deno, source)
    node = _on_path("node")
    if node is not None:
        return JsRuntime("node", node, "PATH")
    return None


def yt_dlp_js_runtimes() -> dict[str, dict[str, Any]]:
    """yt-dlp's ``js_runtimes`` option: the runtime found, by full path."""
    runtime = find_js_runtime()
    if runtime is None:
        return {YT_DLP_DEFAULT_RUNTIME: {}}
    return {runtime.name: {"path": str(runtime.path)}}


def runtime_version(runtime: JsRuntime) -> str:
    """The runtime's own version line (``deno 2.9.8``, ``v22.1.0``): proof that it runs.

    Raises OSError or subprocess.SubprocessError when the binary cannot run.
    """
    completed = subprocess.run(
        [str(runtime.path), "--version"],
        capture_output=True,
        text=True,
        timeout=VERSION_TIMEOUT_SECONDS,
        check=True,
    )
    lines = completed.stdout.strip().splitlines()
    return lines[0] if lines else ""
