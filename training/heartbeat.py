"""The trainer's heartbeat: renews its run's database lease while it works, so that a
dead trainer (killed, its machine gone) is noticed by the lease running out, not by a PID
that may belong to someone else by then (``storage.training_lease``).

The lease names its trainer. One that finds another name there (it stalled past its
lease and the run was resumed elsewhere) has lost the run: it stops at its next step and
never records or promotes anything (``LeaseLost``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from storage.training_lease import TRAINING_LEASE_SECONDS

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4


class LeaseLost(Exception):
    """Another trainer holds this run now (or the run was closed): stop, record nothing."""


class LeaseHeartbeat:
    def __init__(
        self,
        database: Any,
        run_id: int,
        *,
        owner: str,
        lease_seconds: float = TRAINING_LEASE_SECONDS,
    ) -> None:
        self.database = database
        self.run_id = run_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self.confirm()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def renew(self) -> bool:
        from storage.training_lease import lock_training, renew_run_lease

        with self.database.unit_of_work() as uow:
            # Waits for a start in progress to commit: it is what names this trainer.
            lock_training(uow.session)
            held = renew_run_lease(
                uow.session, self.run_id, owner=self.owner, lease_seconds=self.lease_seconds
            )
            uow.commit()
        if not held:
            self._lost.set()
        return held

    def check(self) -> None:
        """Raise ``LeaseLost`` if a renewal found the run held by another trainer."""
        if self._lost.is_set():
            raise LeaseLost(f"training run {self.run_id} is no longer held by {self.owner}")

    def confirm(self) -> None:
        """Renew now and raise ``LeaseLost`` unless this trainer still holds the run
        (before anything that must happen once: recording, promoting)."""
        self.renew()
        self.check()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_seconds / RENEWALS_PER_LEASE):
            try:
                if not self.renew():
                    log.error("training run %d is held by another trainer: stopping", self.run_id)
                    return
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("cannot renew the training run's lease")
