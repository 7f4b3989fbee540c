"""A token bucket per API token, so no one token can walk the search index by brute force.

Each token's bucket holds up to `burst` searches and refills at `per_minute`; a search that
finds it empty is refused with the seconds until the next one. Per process: N replicas of the
API allow N times the rate, which the README says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBuckets:
    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate_s = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._levels: dict[str, tuple[float, float]] = {}  # name -> (level, when)
        self._guard = threading.Lock()

    def take(self, name: str) -> float:
        """Take one search from `name`'s bucket: 0.0 when allowed, else seconds to wait."""
        with self._guard:
            now = self._clock()
            level, then = self._levels.get(name, (self._burst, now))
            level = min(self._burst, level + (now - then) * self._rate_s)
            if level >= 1.0:
                self._levels[name] = (level - 1.0, now)
                return 0.0
            self._levels[name] = (level, now)
            return (1.0 - level) / self._rate_s
