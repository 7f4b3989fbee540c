"""API tokens, the API's settings and the search rate limit, without a server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from customer_ids.config.api_settings import API_SETTINGS, ApiSettings
from customer_ids.domain.api_tokens import (
    TokenBook,
    new_token,
    parse_tokens,
    token_digest,
    token_line,
)
from customer_ids.domain.errors import ConfigError
from customer_ids.tools.api.rate_limit import TokenBuckets
from customer_ids.tools.api.server import bind, print_new_token


def test_a_token_line_holds_the_digest_never_the_token() -> None:
    token = new_token()
    line = token_line("desk", ["numbers:read", "search:personal"], token)
    assert token not in line
    assert line.endswith(token_digest(token))
    (parsed,) = parse_tokens(line, "test")
    assert parsed.name == "desk"
    assert parsed.allows("search:personal")
    assert TokenBook([parsed]).verify(token) == parsed
    assert TokenBook([parsed]).verify(token + "x") is None
    assert TokenBook([parsed]).verify("") is None


def test_tokens_file_and_environment_together(tmp_path: Path) -> None:
    a, b = new_token(), new_token()
    path = tmp_path / "tokens"
    path.write_text(f"# support desk\n\n{token_line('desk', ['numbers:read'], a)}\n")
    settings = ApiSettings.from_env(
        {
            "CUSTOMER_IDS_API_TOKENS_FILE": str(path),
            "CUSTOMER_IDS_API_TOKENS": token_line("crm", ["search:personal"], b) + ";",
        }
    )
    assert len(settings.token_book) == 2
    desk, crm = settings.token_book.verify(a), settings.token_book.verify(b)
    assert desk is not None and crm is not None
    assert desk.allows("numbers:read") and not desk.allows("search:personal")
    assert crm.allows("search:personal") and not crm.allows("numbers:read")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("desk:numbers:read:" + "ab" * 31, "64 hex digits"),
        ("desk:numbers:write:" + "ab" * 32, "unknown or no scopes"),
        ("de sk:numbers:read:" + "ab" * 32, "token name"),
        ("desk::" + "ab" * 32, "unknown or no scopes"),
    ],
)
def test_a_bad_entry_names_the_variable_and_position(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        ApiSettings.from_env(
            {"CUSTOMER_IDS_API_TOKENS": f"{token_line('ok', ['numbers:read'], 'x')};{entry}"}
        )
    assert "CUSTOMER_IDS_API_TOKENS entry 2" in str(caught.value)


def test_a_token_pasted_in_place_of_its_digest_is_not_echoed() -> None:
    secret = new_token()
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({"CUSTOMER_IDS_API_TOKENS": f"desk:numbers:read:{secret}"})
    assert secret not in str(caught.value)


def test_names_and_secrets_are_unique() -> None:
    token = new_token()
    with pytest.raises(ConfigError, match="configured twice"):
        TokenBook(parse_tokens(f"a:numbers:read:{token_digest(token)}\n" * 2, "t"))
    with pytest.raises(ConfigError, match="share one secret"):
        TokenBook(
            parse_tokens(
                f"a:numbers:read:{token_digest(token)}\nb:numbers:read:{token_digest(token)}",
                "t",
            )
        )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "needs at least one token"),
        ({"CUSTOMER_IDS_API_TOKENS_FILE": "/nonexistent/tokens"}, "cannot be read"),
        (
            {"CUSTOMER_IDS_API_SEARCH_RATE": "0"},
            r"CUSTOMER_IDS_API_SEARCH_RATE=0 is out of range; use 1\.\.100000",
        ),
        ({"CUSTOMER_IDS_API_DEFAULT_REGION": "DEU"}, "ISO 3166-1"),
        ({"CUSTOMER_IDS_API_COOKIE_SECURE": "maybe"}, "use on or off"),
    ],
)
def test_settings_mistakes_name_the_variable(env: dict[str, str], message: str) -> None:
    if env and "FILE" not in next(iter(env)):
        env = {**env, "CUSTOMER_IDS_API_TOKENS": token_line("a", ["numbers:read"], "t")}
    with pytest.raises(ConfigError, match=message):
        ApiSettings.from_env(env)


def test_every_api_setting_is_documented_once() -> None:
    names = [s.env for s in API_SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.meaning for s in API_SETTINGS)
    assert all(n.startswith("CUSTOMER_IDS_API_") for n in names)


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=6, burst=2, clock=lambda: now[0])
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(10.0)  # 6 a minute: one every 10 s
    assert buckets.take("b") == 0.0  # per token
    now[0] = 10.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    now[0] = 1000.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0  # refilled up to the burst, no further


def test_the_listening_socket_is_tcp_so_answers_are_not_held_by_nagle() -> None:
    """asyncio sets TCP_NODELAY only on sockets created with IPPROTO_TCP; without it every
    answer written in two parts waited 40 ms for the client's delayed ACK."""
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_a_port_in_use_names_the_variable() -> None:
    taken = bind("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(ConfigError, match="CUSTOMER_IDS_API_PORT"):
            bind("127.0.0.1", taken.getsockname()[1]).close()
    finally:
        taken.close()


def test_api_token_prints_the_line_and_shows_the_token_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert print_new_token("desk", ["numbers:read", "search:personal"]) == 0
    out, err = capsys.readouterr()
    token = err.rsplit(": ", 1)[1].strip()
    assert token not in out
    assert TokenBook(parse_tokens(out, "stdout")).verify(token) is not None
    with pytest.raises(ConfigError, match="use one or more of"):
        print_new_token("desk", ["numbers:write"])
