"""customer -> number and number -> customer: Redis first, the output topic where Redis has no
reverse index; from Redis only numbers the claims log shows committed. A miss is only
reported as "unknown" while Redis holds a valid state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from customer_ids.domain.number_check import NumberReport, check_number
from customer_ids.domain.sequences import Router
from customer_ids.store.ports import StoredAssignment
from customer_ids.store.redis_store import RedisNumberStore
from customer_ids.tools.api.committed import CommittedNumbers
from customer_ids.tools.api.errors import RateLimitedError, UnavailableError
from customer_ids.tools.api.metrics import ApiMetrics
from customer_ids.tools.api.owners import LogOwners
from customer_ids.tools.api.rate_limit import TokenBuckets
from customer_ids.tools.api.records import CustomerRecord

REBUILDING = "rebuilding:"


class Lookups:
    def __init__(
        self,
        store: RedisNumberStore,
        router: Router,
        owners: LogOwners | None,
        metrics: ApiMetrics,
        committed: CommittedNumbers,
        *,
        log_owners: LogOwners | None = None,
        scans: TokenBuckets | None = None,
        alike: Callable[[str], set[str]] | None = None,
    ) -> None:
        """`owners` None: number -> customer from the reverse index in Redis. `committed`
        tells a committed number from a reservation Redis holds for a batch; `log_owners`
        settles what it cannot (the output topic: cached, one read at a time)."""
        self._store = store
        self._alike = alike  # customer -> customers under its email or phone digests
        self._committed = committed
        self._log_owners = log_owners or owners
        self._scans = scans
        self._router = router
        self._owners = owners
        self._metrics = metrics

    def records(
        self, customer_keys: Sequence[str], settle_by_log: bool = True
    ) -> list[CustomerRecord]:
        """The customers among these that have a committed number, in the order given."""
        stored = self._store.lookup(list(dict.fromkeys(customer_keys)))
        return [
            self._with_duplicates(self._with_time(CustomerRecord.from_store(key, stored[key])))
            for key in dict.fromkeys(customer_keys)
            if key in stored and self._is_committed(key, stored[key], settle_by_log)
        ]

    def _with_duplicates(self, record: CustomerRecord) -> CustomerRecord:
        """The numbers of other customers found under this one's email or phone digests
        (where the search index is kept): possible duplicates, numbers only."""
        if self._alike is None:
            return record
        others = sorted(self._alike(record.customer_key) - {record.customer_key})
        numbers = {s.number for s in self._store.lookup(others).values()} if others else set()
        numbers.discard(record.customer_number)  # merged together: one number already
        return replace(record, possible_duplicates=tuple(sorted(numbers)))

    def _is_committed(
        self, customer_key: str, stored: StoredAssignment, settle_by_log: bool
    ) -> bool:
        """The claims log knows it; else (`settle_by_log`) the output topic says this
        customer holds it (a number re-issued after a crash may carry no claim of its own)."""
        full, stored = stored, stored.own_assignment  # a merged customer's own number
        if self._committed.holds(stored, wait=False):
            return True
        if self._committed.holds(stored):
            # Committed while we waited: still this customer's? (A full rebuild may have wiped
            # the reservation we read, and its value gone to someone else since.)
            return self._store.lookup([customer_key]).get(customer_key) == full
        if self._log_owners is None or not settle_by_log:
            return False
        owner, _ = self._log_owners.owner_of(stored.number)
        return owner is not None and owner.customer_key == customer_key

    def customer(self, source_system: str, customer_id: str) -> CustomerRecord | None:
        found = self.records([f"{source_system}/{customer_id}"])
        if found:
            return found[0]
        self.require_valid_state()
        return None

    def number(self, raw: str, who: str) -> tuple[NumberReport, CustomerRecord | None]:
        """The check of `raw`, and its owner when it is a valid number someone holds. A
        lookup that must read the output topic takes one from `who`'s scan budget
        (RateLimitedError when it is spent)."""
        report = check_number(raw, self._router, self.legacy_shapes())
        if not report.valid:
            return report, None
        if self._owners is not None:
            if self._scans is not None and self._owners.would_read(report.number):
                wait_s = self._scans.take(who)
                if wait_s > 0:
                    raise RateLimitedError(wait_s)
            owner, read_log = self._owners.owner_of(report.number)
            counter = self._metrics.owner_log_reads if read_log else self._metrics.owner_cache_hits
            counter.inc()
            return report, owner
        key = self._store.customer_of(report.number)
        found = self.records([key]) if key is not None else []
        if not found:
            self.require_valid_state()
        return report, found[0] if found else None

    def legacy_shapes(self) -> frozenset[str]:
        return self._committed.legacy_shapes()

    def require_valid_state(self) -> None:
        """Raise UnavailableError unless Redis holds a state the service validated."""
        epoch = self._store.status().epoch
        if epoch is None:
            raise UnavailableError(
                "Redis holds no customer-ids state (wiped or never started); the service "
                "rebuilds it from Kafka: try again shortly"
            )
        if epoch.startswith(REBUILDING):
            raise UnavailableError("Redis is being rebuilt from Kafka: try again shortly")

    def _with_time(self, record: CustomerRecord) -> CustomerRecord:
        """Fill in the assignment time when an earlier read of the output topic saw it."""
        if self._owners is None:
            return record
        seen = self._owners.cached(record.customer_number)
        return replace(record, assigned_at=seen.assigned_at) if seen is not None else record
