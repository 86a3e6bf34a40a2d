"""Reproducible temperature fallback on the CTranslate2 path.

When a beam-search window loops (or, in ``WhisperModel.transcribe``, reads as unsure),
faster-whisper decodes it again by *sampling* at rising temperatures. CTranslate2 draws
those samples from a per-worker-thread Mersenne Twister that is seeded once, from
``std::random_device`` unless ``ctranslate2.set_random_seed`` was called before that
thread first sampled, and that then runs on across every clip the worker decodes. So the
words of a clip that falls back depended on the process and on what the worker decoded
before: ``whisper-it evaluate`` of one model on one set read 51.2% and 52.3% WER when two
ran side by side (issue 19), and the gate compared two models through that noise.

CTranslate2 has no per-call seed, so every sampling call of one clip goes to a *replica*
of the model made for that clip: a fresh ``ctranslate2.models.Whisper`` whose worker
thread takes its generator's seed from ``clip_seed`` (the clip's samples and the decoding
settings) on its first draw, under a process-wide lock. The same model, clip and settings
thus always give the same words, whatever ran before or beside them. A replica costs one
model load (0.26 s for whisper-base int8 on CPU) and only clips that fall back pay it; it
is dropped when the clip is done.

``SeededWhisper`` wraps a ``WhisperModel``'s ``ctranslate2`` model and sends the sampling
calls (``sampling_topk != 1``) to the replica of the clip whose ``sampling_scope`` is
open; beam-search calls go to the shared model as before.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

# Domain separation for the seed hash.
_SEED_DOMAIN = b"whisper-it/sampling-seed/v1:"
# ctranslate2.set_random_seed takes an unsigned 32-bit integer.
_SEED_BYTES = 4
# Held from setting CTranslate2's global seed until a new replica has drawn with it.
_SEED_LOCK = threading.Lock()


def clip_seed(samples: np.ndarray, settings: object) -> int:
    """A 32-bit seed from a clip's samples (as float32) and the decoding settings (a
    dataclass such as ``TranscribeOptions``, or any value with a stable ``repr``)."""
    digest = hashlib.sha256(_SEED_DOMAIN)
    digest.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
    digest.update(b"\0" + _settings_key(settings).encode())
    return int.from_bytes(digest.digest()[:_SEED_BYTES], "big")


def _settings_key(settings: object) -> str:
    try:
        values = {f.name: getattr(settings, f.name) for f in fields(settings)}  # type: ignore[arg-type]
    except TypeError:
        return repr(settings)
    return repr(sorted(values.items()))


@dataclass(frozen=True)
class ReplicaSpec:
    """How to load another copy of the served CTranslate2 model."""

    model_dir: Path
    device: str
    compute_type: str
    cpu_threads: int = 0


class _Scope:
    """One clip's sampling: its seed and, once it first samples, its own replica."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.replica: Any = None
        self.sampling_calls = 0


_current: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "whisper_it_sampling_scope", default=None
)


@contextmanager
def sampling_scope(seed: int) -> Iterator[None]:
    """Route this thread's sampling calls to a replica seeded with ``seed`` until the
    block ends (then the replica is dropped)."""
    scope = _Scope(seed)
    token = _current.set(scope)
    try:
        yield
    finally:
        _current.reset(token)
        scope.replica = None


class SeededWhisper:
    """A ``ctranslate2.models.Whisper`` whose sampling is seeded per clip (see module)."""

    def __init__(self, inner: Any, spec: ReplicaSpec) -> None:
        self._inner = inner
        self._spec = spec
        # Sampling calls served by seeded replicas so far (tests and diagnostics).
        self.seeded_calls = 0
        self._count_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def generate(self, features: Any, prompts: Any, **kwargs: Any) -> Any:
        if kwargs.get("sampling_topk", 1) == 1:  # beam search or greedy: deterministic
            return self._inner.generate(features, prompts, **kwargs)
        scope = _current.get()
        if scope is None:  # a caller that opened no scope: seeded from the features
            with sampling_scope(_features_seed(features)):
                return self.generate(features, prompts, **kwargs)
        with self._count_lock:
            self.seeded_calls += 1
        if scope.replica is not None:
            return scope.replica.generate(features, prompts, **kwargs)
        with _SEED_LOCK:
            # The replica's worker thread seeds its generator on its first draw, which
            # happens in this call: nobody may change the global seed until it returns.
            import ctranslate2

            ctranslate2.set_random_seed(scope.seed)
            scope.replica = self._load_replica()
            return scope.replica.generate(features, prompts, **kwargs)

    def _load_replica(self) -> Any:
        import ctranslate2

        spec = self._spec
        return ctranslate2.models.Whisper(
            str(spec.model_dir),
            device=spec.device,
            compute_type=spec.compute_type,
            inter_threads=1,
            intra_threads=spec.cpu_threads,
        )


def _features_seed(features: Any) -> int:
    try:
        array = np.asarray(features)
    except (TypeError, ValueError, RuntimeError):  # on a GPU: no host view
        array = np.asarray(features.to_device(_cpu_device()))
    return clip_seed(array.astype(np.float32, copy=False).ravel(), "features")


def _cpu_device() -> Any:
    import ctranslate2

    return ctranslate2.Device.cpu
