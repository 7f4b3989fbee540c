"""Every Redis key name in one place. A prefix keeps tenants and tests apart."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# Customers are spread over this many hashes so each stays a compact listpack
# (Redis' hash-max-listpack-entries defaults to 128) instead of one key per customer.
ASSIGNMENT_BUCKETS = 16384


@dataclass(frozen=True)
class RedisKeys:
    prefix: str

    @property
    def epoch(self) -> str:
        return f"{self.prefix}epoch"

    @property
    def recovery_lock(self) -> str:
        return f"{self.prefix}lock:recovery"

    def counter(self, counter_name: str) -> str:
        return f"{self.prefix}seq:{counter_name}"

    def lock(self, sequence_name: str) -> str:
        return f"{self.prefix}lock:{sequence_name}"

    def assignments(self, customer_key: str) -> str:
        """The hash bucket that holds this customer's assignment."""
        return f"{self.prefix}map:{zlib.crc32(customer_key.encode()) % ASSIGNMENT_BUCKETS}"

    def numbers(self, customer_number: str) -> str:
        """The hash bucket of the reverse map, number -> customer."""
        return f"{self.prefix}num:{zlib.crc32(customer_number.encode()) % ASSIGNMENT_BUCKETS}"
