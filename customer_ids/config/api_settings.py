"""The settings of `customer-ids api`, declared once like the service's (settings.py): each
field holds its variable, default, bounds and meaning; the README table follows from them.

The tokens are read here, at start-up, so a broken tokens file stops the API with a message
naming the variable and the entry, before it serves anything.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import PrivateAttr, field_validator, model_validator

from customer_ids.config.env_settings import EnvSettings, Setting, setting
from customer_ids.config.settings import OnOff
from customer_ids.domain.api_tokens import ApiToken, TokenBook, parse_tokens
from customer_ids.domain.errors import ConfigError

__all__ = ["API_SETTINGS", "ApiSettings"]


class ApiSettings(EnvSettings):
    """The API's configuration; the Kafka, Redis and search-key settings are the service's."""

    host: str = setting(
        "127.0.0.1", "CUSTOMER_IDS_API_HOST", "address `customer-ids api` listens on"
    )
    port: int = setting(
        8080, "CUSTOMER_IDS_API_PORT", "port of the API and the support page", ge=1, le=65535
    )
    tokens_file: Path | None = setting(
        None,
        "CUSTOMER_IDS_API_TOKENS_FILE",
        "file of API tokens, one name:scope,scope:sha256-of-token a line (# comments)",
        shown="",
    )
    tokens: str = setting(
        "",
        "CUSTOMER_IDS_API_TOKENS",
        "more API tokens, entries as in the file separated by ';'",
    )
    search_rate: int = setting(
        30,
        "CUSTOMER_IDS_API_SEARCH_RATE",
        "searches by email or phone a token may make per minute (token bucket; 429 past it)",
        ge=1,
        le=100_000,
    )
    search_burst: int = setting(
        10,
        "CUSTOMER_IDS_API_SEARCH_BURST",
        "searches a token may make at once before the per-minute rate applies",
        ge=1,
        le=10_000,
    )
    default_region: str = setting(
        "",
        "CUSTOMER_IDS_API_DEFAULT_REGION",
        "ISO country code a phone number without + is read in when a search names none "
        "(API and page); empty: such a search must name one",
    )
    owner_cache: int = setting(
        100_000,
        "CUSTOMER_IDS_API_OWNER_CACHE",
        "number -> customer answers kept in memory when they had to be read from the output "
        "topic (reverse index off); about 400 bytes each",
        ge=0,
        le=10_000_000,
    )
    cookie_secure: OnOff = setting(
        True,
        "CUSTOMER_IDS_API_COOKIE_SECURE",
        "on: the support page's login cookie is sent over HTTPS only; off for plain HTTP "
        "on a trusted network",
        shown="on",
    )
    session_minutes: int = setting(
        480,
        "CUSTOMER_IDS_API_SESSION_MINUTES",
        "how long a support page login lasts",
        ge=5,
        le=10_080,
    )

    scan_rate: int = setting(
        30,
        "CUSTOMER_IDS_API_SCAN_RATE",
        "number lookups a token may make per minute that must read the output topic (reverse "
        "index off, not cached; 429 past it)",
        ge=1,
        le=100_000,
    )
    scan_burst: int = setting(
        10,
        "CUSTOMER_IDS_API_SCAN_BURST",
        "such lookups a token may make at once before the per-minute rate applies",
        ge=1,
        le=10_000,
    )
    assign_timeout_ms: int = setting(
        5000,
        "CUSTOMER_IDS_API_ASSIGN_TIMEOUT_MS",
        "how long POST /v1/customers waits for the committed number before it answers 202 "
        "with a Location to ask again",
        ge=50,
        le=120_000,
    )

    _book: TokenBook = PrivateAttr()

    @field_validator("default_region")
    @classmethod
    def _region(cls, region: str) -> str:
        region = region.strip().upper()
        if region and (len(region) != 2 or not region.isalpha()):
            raise ValueError("is not an ISO 3166-1 alpha-2 code such as DE or US")
        return region

    @model_validator(mode="after")
    def _read_tokens(self) -> ApiSettings:
        found: list[ApiToken] = []
        if self.tokens_file is not None:
            try:
                text = self.tokens_file.read_text()
            except OSError as exc:
                raise ConfigError(
                    f"CUSTOMER_IDS_API_TOKENS_FILE={self.tokens_file}: cannot be read "
                    f"({exc.strerror})"
                ) from None
            found += parse_tokens(text, "CUSTOMER_IDS_API_TOKENS_FILE")
        found += parse_tokens(self.tokens, "CUSTOMER_IDS_API_TOKENS", separator=";")
        if not found:
            raise ConfigError(
                "the API needs at least one token: set CUSTOMER_IDS_API_TOKENS_FILE or "
                "CUSTOMER_IDS_API_TOKENS (`customer-ids api-token NAME --scopes S,S` makes one)"
            )
        self._book = TokenBook(found)
        return self

    @property
    def token_book(self) -> TokenBook:
        return self._book


API_SETTINGS: tuple[Setting, ...] = ApiSettings.documented()
