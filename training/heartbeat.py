"""The trainer's heartbeat: renews its run's database lease while it works, so that a
dead trainer (killed, its machine gone) is noticed by the lease running out, not by a PID
that may belong to someone else by then (``storage.training_lease``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from storage.training_lease import TRAINING_LEASE_SECONDS

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4


class LeaseHeartbeat:
    def __init__(
        self, database: Any, run_id: int, *, lease_seconds: float = TRAINING_LEASE_SECONDS
    ) -> None:
        self.database = database
        self.run_id = run_id
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self.renew()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def renew(self) -> bool:
        from storage.training_lease import renew_run_lease

        with self.database.unit_of_work() as uow:
            held = renew_run_lease(uow.session, self.run_id, lease_seconds=self.lease_seconds)
            uow.commit()
        return held

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_seconds / RENEWALS_PER_LEASE):
            try:
                self.renew()
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("cannot renew the training run's lease")
