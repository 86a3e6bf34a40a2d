"""The transcriber in use, loaded lazily and swapped between jobs when training promotes a
new version (or an admin rolls back). A version that fails to load is remembered and
retried with back-off, and reported once, so a broken folder in ``CURRENT`` neither
spams the log every few seconds nor stops the bot: the model already loaded keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from model.asr.transcription import Transcriber

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0


@dataclass(frozen=True)
class LoadFailure:
    spec: str
    error: str
    attempts: int
    retry_at: float  # time.monotonic()


class ModelHolder:
    def __init__(
        self,
        loader: Callable[[str], Transcriber],
        spec_provider: Callable[[], str],
        *,
        on_broken: Callable[[LoadFailure], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._spec_provider = spec_provider
        self._current: Transcriber | None = None
        self._spec: str | None = None
        self._lock = threading.Lock()
        # One load at a time: every worker refreshes between jobs, and each loading the new
        # version held N+1 models at once (on a GPU, out of memory at each promotion).
        self._loading = threading.Lock()
        self._failure: LoadFailure | None = None
        self.on_broken = on_broken
        self._clock = clock

    @property
    def spec(self) -> str | None:
        return self._spec

    @property
    def failure(self) -> LoadFailure | None:
        """The last version that failed to load, while it is still the one wanted."""
        return self._failure

    @property
    def loaded(self) -> bool:
        """Whether a model is loaded (``get`` then returns at once)."""
        return self._current is not None

    def get(self) -> Transcriber:
        """The model in use, loading the current one first if none is (raises if it fails)."""
        with self._lock:
            if self._current is None:
                spec = self._spec_provider()
                self._current, self._spec = self._loader(spec), spec
                log.info("model loaded: %s (%s)", self._current.model_name, self._current.engine)
            return self._current

    def refresh(self) -> bool:
        """Load the current version if it is not the one in use. True if it swapped.

        Never raises: a version that does not load is retried after a growing pause
        while the loaded model keeps serving, as it does while another thread loads."""
        spec = self._spec_provider()
        if self._current is not None and spec == self._spec:
            self._failure = None
            return False
        if not self._loading.acquire(blocking=False):
            return False
        try:
            return self._swap_to(spec)
        finally:
            self._loading.release()

    def _swap_to(self, spec: str) -> bool:
        if self._current is not None and spec == self._spec:
            return False  # another thread loaded it meanwhile
        failure = self._failure
        now = self._clock()
        if failure is not None and failure.spec == spec and now < failure.retry_at:
            return False
        try:
            transcriber = self._loader(spec)  # slow: outside the lock, the old model serves
        except Exception as exc:
            self._remember_failure(spec, exc, failure, now)
            return False
        with self._lock:
            self._current, self._spec = transcriber, spec
        self._failure = None
        log.info("model swapped: %s (%s)", transcriber.model_name, spec)
        return True

    def _remember_failure(
        self, spec: str, exc: Exception, previous: LoadFailure | None, now: float
    ) -> None:
        attempts = previous.attempts + 1 if previous and previous.spec == spec else 1
        pause = min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), MAX_RETRY_SECONDS)
        self._failure = LoadFailure(spec, f"{type(exc).__name__}: {exc}", attempts, now + pause)
        if attempts == 1:
            log.error("cannot load the model %s; the loaded one keeps serving", spec, exc_info=exc)
            if self.on_broken is not None:
                try:
                    self.on_broken(self._failure)
                except Exception:
                    log.exception("cannot report the broken model")
        else:
            log.warning("model %s still does not load (attempt %d)", spec, attempts)
