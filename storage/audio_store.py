"""Content-addressed audio blobs: 16 kHz mono FLAC (16-bit PCM) named by their hash.

``root/ab/abcdef....flac`` where the name is the SHA-256 of the 16-bit PCM samples, so
the same audio sent twice is stored once, and a name always means the same content.
Writes go to a temporary file in the same folder and are renamed into place, so a
reader (another process) never sees half a file.

A row that will refer to a blob is committed under a *pin* (``pinned``): a file beside the
blob that deletion honours. Deletion renames the blob aside first and looks for pins only
then, so a pin taken before that look keeps the blob, and one taken after it finds the
blob gone (``put`` writes it again; a reuse of stored audio gives up).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
FLAC_SUFFIX = ".flac"
# k / 32768 is how 16-bit audio reads back as float (libsndfile, PyAV): scaling by the same
# factor makes get() followed by put() give back the same samples and the same hash.
_PCM16_SCALE = 32768
_PCM16_MIN, _PCM16_MAX = -32768, 32767
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHARD_CHARS = 2
_TMP_SUFFIX = ".tmp"
_PIN_SUFFIX = ".pin"


class AudioStoreError(Exception):
    """Base class of the audio store's errors."""


class AudioNotFoundError(AudioStoreError, KeyError):
    """No blob with that hash."""


class InvalidAudioError(AudioStoreError, ValueError):
    """Samples that are not float mono audio, or a malformed hash."""


@dataclass(frozen=True)
class AudioRef:
    sha256: str
    path: Path
    duration: float


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to 16-bit PCM (out-of-range values are clipped)."""
    array = np.asarray(samples)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.floating):
        raise InvalidAudioError(f"expected 1-D float samples, got {array.dtype} {array.shape}")
    if array.size == 0:
        raise InvalidAudioError("no samples")
    if not np.all(np.isfinite(array)):
        raise InvalidAudioError("samples contain NaN or infinity")
    scaled = np.round(array.astype(np.float64) * _PCM16_SCALE)
    return np.clip(scaled, _PCM16_MIN, _PCM16_MAX).astype("<i2")


def pcm_sha256(pcm: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).hexdigest()


class AudioStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise InvalidAudioError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:_SHARD_CHARS] / f"{sha256}{FLAC_SUFFIX}"

    def put(self, samples: np.ndarray) -> AudioRef:
        """Store float32 mono 16 kHz ``samples``; storing the same audio again is free."""
        pcm = to_pcm16(samples)
        return self._put_pcm(pcm, pcm_sha256(pcm))

    @contextlib.contextmanager
    def put_pinned(self, samples: np.ndarray) -> Iterator[AudioRef]:
        """``put``, the blob pinned until the block ends: commit the row that refers to it
        inside the block."""
        pcm = to_pcm16(samples)
        sha = pcm_sha256(pcm)
        with self.pinned(sha):
            yield self._put_pcm(pcm, sha)

    def _put_pcm(self, pcm: np.ndarray, sha: str) -> AudioRef:
        import soundfile

        target = self.path(sha)
        duration = pcm.size / SAMPLE_RATE
        if target.exists():
            try:
                # Fresh again: the orphan sweep spares recent blobs, and this one is about
                # to be referenced by a row the caller has not committed yet.
                os.utime(target)
                return AudioRef(sha256=sha, path=target, duration=duration)
            except FileNotFoundError:
                pass  # swept just now: write it again
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{sha}.", suffix=_TMP_SUFFIX)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                soundfile.write(handle, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
                handle.flush()
                os.fsync(handle.fileno())
            # Two processes storing the same audio race harmlessly: same name, same bytes.
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return AudioRef(sha256=sha, path=target, duration=duration)

    def get(self, sha256: str) -> np.ndarray:
        """The stored samples as float32 mono 16 kHz."""
        import soundfile

        path = self.path(sha256)
        try:
            samples, rate = soundfile.read(path, dtype="float32", always_2d=False)
        except (FileNotFoundError, soundfile.LibsndfileError) as exc:
            if not path.exists():
                raise AudioNotFoundError(sha256) from exc
            raise
        if rate != SAMPLE_RATE:  # only a foreign file dropped into the store could do this
            raise AudioStoreError(f"{path} is {rate} Hz, expected {SAMPLE_RATE}")
        return samples

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove a blob unless it is pinned; False if it was not there (or pinned)."""
        return self._delete(sha256, cutoff=None)

    def delete_if_older(self, sha256: str, cutoff: float) -> bool:
        """Remove a blob last written (or re-put) before ``cutoff`` (a ``time.time()``),
        unless it is pinned."""
        return self._delete(sha256, cutoff=cutoff)

    def _delete(self, sha256: str, *, cutoff: float | None) -> bool:
        path = self.path(sha256)
        aside = path.with_name(f".{sha256}.{secrets.token_hex(8)}{_TMP_SUFFIX}")
        try:
            if cutoff is not None and path.stat().st_mtime >= cutoff:
                return False
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        # A put that refreshed the blob before the rename, or a pin taken before this
        # look, means a row is about to refer to it: put it back (a put since the rename
        # wrote the same bytes under the same name).
        refreshed = cutoff is not None and aside.stat().st_mtime >= cutoff
        if refreshed or self._is_pinned(sha256):
            os.replace(aside, path)
            return False
        aside.unlink()
        # The shard folder stays: removing it could race another process's put().
        return True

    @contextlib.contextmanager
    def pinned(self, sha256: str) -> Iterator[None]:
        """Keep the blob from deletion while a row that refers to it is committed: put or
        check the blob inside, and commit before leaving."""
        folder = self.path(sha256).parent
        folder.mkdir(parents=True, exist_ok=True)
        pin = folder / f".{sha256}.{secrets.token_hex(8)}{_PIN_SUFFIX}"
        pin.touch()
        try:
            yield
        finally:
            pin.unlink(missing_ok=True)

    def _is_pinned(self, sha256: str) -> bool:
        folder = self.path(sha256).parent
        return any(folder.glob(f".{sha256}.*{_PIN_SUFFIX}"))

    def remove_stale_temporaries(self, cutoff: float) -> int:
        """Remove half-written files a crashed ``put`` left, and pins a crashed writer
        left, older than ``cutoff``."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for suffix in (_TMP_SUFFIX, _PIN_SUFFIX):
            for path in self.root.glob(f"*/.*{suffix}"):
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def __iter__(self) -> Iterator[str]:
        """The hashes of every stored blob."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob(f"*/*{FLAC_SUFFIX}")):
            if _SHA256.fullmatch(path.stem):
                yield path.stem
