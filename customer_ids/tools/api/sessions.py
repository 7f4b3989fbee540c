"""Support page sessions, kept on the server: the cookie holds a random session id, never the
token. A session ends when it expires (CUSTOMER_IDS_API_SESSION_MINUTES after sign-in) or at
sign-out, whatever the browser still holds.

Sessions live in this API process's memory: behind a load balancer, route a browser to the
same process (sticky sessions), or it signs in again."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from customer_ids.domain.api_tokens import ApiToken

MAX_SESSIONS = 10_000  # past it, the oldest sign-ins end first


@dataclass(frozen=True)
class _Session:
    token: ApiToken
    expires_at: float


class Sessions:
    def __init__(self, minutes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = minutes * 60.0
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, _Session] = {}  # in sign-in order

    def start(self, token: ApiToken) -> str:
        """A new session for `token`; its id goes in the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            for old in [k for k, s in self._by_id.items() if s.expires_at <= now]:
                del self._by_id[old]
            while len(self._by_id) >= MAX_SESSIONS:
                del self._by_id[next(iter(self._by_id))]
            self._by_id[session_id] = _Session(token, now + self._seconds)
        return session_id

    def token_of(self, session_id: str) -> ApiToken | None:
        """The token signed in under `session_id`, or None (unknown, ended or expired)."""
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if session.expires_at <= self._clock():
                del self._by_id[session_id]
                return None
            return session.token

    def end(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)
