"""Support page sessions kept on the server: expiry, sign-out, a bounded table."""

from __future__ import annotations

import pytest

from customer_ids.domain.api_tokens import ApiToken
from customer_ids.tools.api import sessions as sessions_module
from customer_ids.tools.api.sessions import Sessions


def token(name: str = "desk") -> ApiToken:
    return ApiToken(name=name, scopes=frozenset({"numbers:read"}), sha256="0" * 64)


def test_a_session_expires_and_a_signed_out_one_is_gone() -> None:
    now = [1000.0]
    sessions = Sessions(minutes=10, clock=lambda: now[0])
    first, second = sessions.start(token()), sessions.start(token())
    assert first != second and len(first) >= 40  # random, unguessable
    assert sessions.token_of(first) == token()
    sessions.end(first)
    assert sessions.token_of(first) is None  # a copied cookie stops working too
    now[0] += 10 * 60
    assert sessions.token_of(second) is None  # expired on the server, whatever the cookie
    assert sessions.token_of("made-up") is None


def test_the_table_is_bounded_oldest_sign_ins_end_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 3)
    sessions = Sessions(minutes=10)
    ids = [sessions.start(token(f"t{i}")) for i in range(4)]
    assert sessions.token_of(ids[0]) is None
    assert [sessions.token_of(i) is not None for i in ids[1:]] == [True, True, True]
