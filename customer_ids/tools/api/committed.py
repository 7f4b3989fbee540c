"""Whether what Redis holds for a customer is a committed number (issue 25).

Redis also holds reservations: a batch writes its customers' numbers before its Kafka
transaction commits, and a batch that aborts leaves them there until its retry commits them;
after a failover such a reservation can vanish and the number later go to someone else. So the
API answers a number only once the claims log (the watermark topic, read_committed: what every
instance committed, consumer/claims.py) holds it. A number still committing is waited for
briefly; one that is not committed is not a number yet.
"""

from __future__ import annotations

import threading
import time

from consumer.claims import ClaimsBehindError, ClaimsLog
from customer_ids.adapters.logs import get_logger
from customer_ids.store.ports import StoredAssignment

log = get_logger(__name__)


class CommittedNumbers:
    def __init__(self, claims: ClaimsLog, wait_s: float = 1.0, history_s: float = 90.0) -> None:
        self._claims = claims
        self._wait_s = wait_s
        self._lock = threading.Lock()
        # What was committed before the API started, read once (an instance's transaction
        # left open holds the read until the broker aborts it: then the rest is read later).
        try:
            claims.read_until(claims.end_offset(history_s), history_s)
        except ClaimsBehindError as exc:
            log.warning("claims_history_incomplete", error=str(exc)[:200])
            claims.end_history()

    def holds(self, assignment: StoredAssignment, wait: bool = True) -> bool:
        """True once the number is committed; waits up to `wait_s` for one committing now
        (`wait`). The value is what is checked, not its holder: after a wait, the caller
        reads Redis again (a reservation may have been wiped meanwhile and its value given to
        someone else)."""
        deadline = time.monotonic() + (self._wait_s if wait else 0.0)
        while True:
            with self._lock:
                self._claims.catch_up()
                if self._claims.known(assignment.counter, assignment.value):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def legacy_shapes(self) -> frozenset[str]:
        """The shapes of the legacy numbers imports kept (consumer/claims.py)."""
        with self._lock:
            self._claims.catch_up()
            return frozenset(self._claims.legacy_shapes)

    def close(self) -> None:
        self._claims.close()
