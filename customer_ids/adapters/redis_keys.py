"""Every Redis key name in one place. A prefix keeps tenants and tests apart.

Assignments live in hash buckets, not one key per customer: each bucket stays a compact
listpack while it holds at most `hash-max-listpack-entries` (128 by default) customers, so
32,768 buckets keep about 4 million customers compact; past that, raise that Redis setting.
The field is a 128-bit BLAKE2b digest of `source_system/customer_id`: fixed 16 bytes however
long upstream ids are, with a collision chance like that of random UUIDs.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

ASSIGNMENT_BUCKETS = 32768


def customer_field(customer_key: str) -> bytes:
    return hashlib.blake2b(customer_key.encode(), digest_size=16).digest()


@dataclass(frozen=True)
class RedisKeys:
    prefix: str

    @property
    def epoch(self) -> str:
        """A uuid while the state is valid; `rebuilding:<token>` while a recovery runs."""
        return f"{self.prefix}epoch"

    @property
    def identity(self) -> str:
        """run_id/master_replid of the server the last recovery validated the state on."""
        return f"{self.prefix}identity"

    @property
    def rebuild_identity(self) -> str:
        """The server a running recovery began on; it may complete only on that one."""
        return f"{self.prefix}rebuild-identity"

    @property
    def checkpoint(self) -> str:
        """Hash: output partition -> offset below which every committed assignment is held."""
        return f"{self.prefix}checkpoint"

    @property
    def ledger(self) -> str:
        """Hash: every counter key -> its value, every map bucket -> its number of entries, as
        the service last wrote them. A key deleted, evicted or restored on the same server
        no longer matches (nothing else in Redis would show it)."""
        return f"{self.prefix}ledger"

    @property
    def wait_marker(self) -> str:
        """A counter written just before WAIT, on WAIT's own connection."""
        return f"{self.prefix}wait-marker"

    @property
    def recovery_lock(self) -> str:
        # Not under lock:<sequence>: a sequence may be called "recovery".
        return f"{self.prefix}recovery-lock"

    def import_below(self, import_id: str) -> str:
        """Hash: where each counter stood when this import first raised it."""
        return f"{self.prefix}import:{import_id}:below"

    def instance(self, transactional_id: str) -> str:
        """Held (a leased lock) by the one live worker with this transactional.id."""
        return f"{self.prefix}instance:{transactional_id}"

    def search_term(self, digest: str) -> str:
        """Set of customer keys whose email or phone has this keyed digest (never the value)."""
        return f"{self.prefix}search:{digest}"

    def terms(self, field: bytes) -> str:
        """The hash bucket of customer field digest -> every search digest it is found under
        (comma-separated): what an erasure removes, and what a new digest is added to."""
        return f"{self.prefix}terms:{int.from_bytes(field[:4], 'big') % ASSIGNMENT_BUCKETS}"

    def erased(self, field: bytes) -> str:
        """The hash bucket of customer field digest -> when its erasure was asked for (ms):
        digests from events no newer are never indexed again."""
        return f"{self.prefix}erased:{int.from_bytes(field[:4], 'big') % ASSIGNMENT_BUCKETS}"

    def counter(self, counter_name: str) -> str:
        return f"{self.prefix}seq:{counter_name}"

    def lock(self, sequence_name: str) -> str:
        return f"{self.prefix}lock:{sequence_name}"

    def assignments(self, field: bytes) -> str:
        """The hash bucket that holds the customer with this field digest."""
        return f"{self.prefix}map:{int.from_bytes(field[:4], 'big') % ASSIGNMENT_BUCKETS}"

    @property
    def merge_generation(self) -> str:
        """Counts every applied merge step: a batch that read customers before a merge
        changed them is refused at its fence (consumer/merges.py)."""
        return f"{self.prefix}merges:gen"

    def merged_into(self, customer_key: str) -> str:
        """The customers merged directly into this one (a hint, checked against the map:
        an unmerge rebuilt from the log leaves its old entry behind)."""
        return f"{self.prefix}merged:{customer_key}"

    def numbers(self, customer_number: str) -> str:
        """The hash bucket of the optional reverse index, number -> customer."""
        return f"{self.prefix}num:{zlib.crc32(customer_number.encode()) % ASSIGNMENT_BUCKETS}"
