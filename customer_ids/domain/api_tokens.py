"""API tokens and their scopes, kept as SHA-256 digests only.

A token is a long random secret (`new_token()`), so one unsalted SHA-256 is enough: there is
nothing to guess from the digest, and a leaked token list grants nothing. One entry a line:

    support-desk:numbers:read,search:personal:9f86d081884c7d65...(64 hex digits)

`numbers:read` reads numbers and customers; `search:personal` searches by email or phone, a
separate scope because it is a lookup by personal data (and rate limited); `customers:write`
sends a new customer and waits for its number (POST /v1/customers).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

from customer_ids.domain.errors import ConfigError

Scope = Literal["numbers:read", "search:personal", "customers:write"]
SCOPES: tuple[str, ...] = get_args(Scope)
TOKEN_PREFIX = "cidt_"  # so secret scanners and people recognise one

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiToken:
    """Who a caller is (`name`, for audit lines) and what they may do."""

    name: str
    scopes: frozenset[str]
    sha256: str = field(repr=False)

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh secret: 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_line(name: str, scopes: Iterable[str], token: str) -> str:
    """The line to put in the tokens file for `token` (its digest, never the token)."""
    return f"{name}:{','.join(scopes)}:{token_digest(token)}"


def _parse_line(line: str, where: str) -> ApiToken:
    # Scopes contain ':', so the name is before the first and the digest after the last.
    name, _, rest = line.partition(":")
    scope_text, _, digest = rest.rpartition(":")
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: a token name is 1-64 of A-Z a-z 0-9 _ . - (name:scopes:sha256)"
        )
    scopes = frozenset(s.strip() for s in scope_text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if not scopes or unknown:
        raise ConfigError(
            f"{where}: token {name!r} has unknown or no scopes {unknown}; use {', '.join(SCOPES)}"
        )
    if not _DIGEST.fullmatch(digest.strip().lower()):
        raise ConfigError(
            f"{where}: token {name!r} needs the SHA-256 of the token as 64 hex digits, never the "
            "token itself (`customer-ids api-token NAME --scopes S,S` prints both)"
        )
    return ApiToken(name, scopes, digest.strip().lower())


def parse_tokens(text: str, origin: str, separator: str | None = None) -> list[ApiToken]:
    """Entries one a line (or split by `separator` too); blank lines and `#` comments skipped.
    Errors name `origin` and the entry's position, never its text (it could be a secret)."""
    entries = text.splitlines()
    if separator:
        entries = [part for line in entries for part in line.split(separator)]
    tokens = []
    for number, entry in enumerate(entries, 1):
        line = entry.strip()
        if line and not line.startswith("#"):
            tokens.append(_parse_line(line, f"{origin} entry {number}"))
    return tokens


class TokenBook:
    """The configured tokens, looked up by the digest of what a caller presents."""

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._by_digest: dict[str, ApiToken] = {}
        for token in tokens:
            if any(t.name == token.name for t in self._by_digest.values()):
                raise ConfigError(f"API token name {token.name!r} is configured twice")
            if token.sha256 in self._by_digest:
                raise ConfigError(f"API tokens {token.name!r} and another share one secret")
            self._by_digest[token.sha256] = token

    def __len__(self) -> int:
        return len(self._by_digest)

    def verify(self, presented: str) -> ApiToken | None:
        """The token's entry, or None. The lookup is by digest of a 256-bit secret, so its
        timing tells an attacker nothing usable."""
        if not presented or len(presented) > 512:
            return None
        return self._by_digest.get(token_digest(presented))
