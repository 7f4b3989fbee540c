"""What the API tests share: customers numbered by the real service, tokens, the API as a
real process."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from fastapi.testclient import TestClient

from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.config.api_settings import ApiSettings
from customer_ids.config.settings import Settings
from customer_ids.domain.api_tokens import new_token, token_line
from customer_ids.domain.events import CustomerCreated, CustomerIdAssigned, epoch_ms, now_utc
from customer_ids.domain.search_terms import terms_for
from customer_ids.store.ports import Terms
from customer_ids.store.terms import RedisTermsStore
from customer_ids.tools.api.app import create_app
from customer_ids.tools.api.context import build_context
from tests.helpers.events import send
from tests.helpers.own_redis import free_port
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import wait_for_outputs

KEY_A = "a" * 24 + "-search-key-one-2026"
KEY_B = "b" * 24 + "-search-key-two-2026"


@dataclass(frozen=True)
class Tokens:
    reader: str = field(default_factory=new_token)  # numbers:read
    searcher: str = field(default_factory=new_token)  # numbers:read, search:personal
    search_only: str = field(default_factory=new_token)  # search:personal
    writer: str = field(default_factory=new_token)  # customers:write, numbers:read

    @property
    def env(self) -> str:
        return ";".join(
            [
                token_line("reader", ["numbers:read"], self.reader),
                token_line("support", ["numbers:read", "search:personal"], self.searcher),
                token_line("crm-bot", ["search:personal"], self.search_only),
                token_line("signup-form", ["customers:write", "numbers:read"], self.writer),
            ]
        )


TOKENS = Tokens()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def support_events() -> list[CustomerCreated]:
    """Customers with the personal data support searches by (two share an email)."""
    rows = [
        ("webshop", "C1", "DE", "Jane.Doe@Example.com", "030 1234567"),
        ("webshop", "C2", "US", "bob@example.org", "+1 (202) 555-0143"),
        ("crm", "A/7", "DE", "jane.doe@example.com", None),
        ("crm", "C4", "DE", None, "0171 2345678"),
        ("webshop", "C5", "FR", "not an email", "12"),
    ]
    return [
        CustomerCreated(
            str(uuid.uuid4()), cid, system, "INDIVIDUAL", country, now_utc(), None, email, phone
        )
        for system, cid, country, email, phone in rows
    ]


@dataclass(frozen=True)
class Numbered:
    """Customers the service gave numbers, indexed under KEY_A as the service will index them."""

    scenario: Scenario
    events: list[CustomerCreated]
    outputs: dict[str, CustomerIdAssigned]  # customer key -> its output

    def number_of(self, customer_key: str) -> str:
        return self.outputs[customer_key].customer_number

    def settings(self, **env: str) -> Settings:
        base = {"CUSTOMER_IDS_SEARCH_KEY": KEY_A, "CUSTOMER_IDS_REVERSE_INDEX": "on"}
        return Settings.from_env(self.scenario.env(**{**base, **env}))

    def index(self, key: str) -> None:
        client = redis.Redis.from_url(self.scenario.endpoints.redis_url)
        # As the service keeps them: the index and each customer's digests, replaced.
        terms = RedisTermsStore(client, RedisKeys(self.scenario.redis_prefix))
        for event in self.events:
            found = terms_for(event.email, event.phone, event.country_code, key.encode())
            value = Terms(dict.fromkeys(found, epoch_ms(event.occurred_at))).encode()
            terms.restore({event.customer_key: value if found else None})


def number_customers(scenario: Scenario, log_dir: Path) -> Numbered:
    """Send the events, let the real service (reverse index on) number them, stop it."""
    scenario.create_topics()
    events = send(scenario, support_events())
    service = ServiceProcess(scenario, log_dir, "svc", CUSTOMER_IDS_REVERSE_INDEX="on").start()
    try:
        committed = wait_for_outputs(
            scenario.endpoints.bootstrap, scenario.output_topic, len(events)
        )
        assert service.terminate() == 0
    finally:
        if service.running():
            service.kill()
    numbered = Numbered(scenario, events, {o.customer_key: o for o in committed.outputs})
    numbered.index(KEY_A)
    return numbered


def api_client(settings: Settings, **api_env: str) -> TestClient:
    """The app in-process (httpx under FastAPI's TestClient), on the real Redis and Kafka.
    The search rate is generous unless a test sets it: only the rate-limit test measures it."""
    defaults = {
        "CUSTOMER_IDS_API_TOKENS": TOKENS.env,
        "CUSTOMER_IDS_API_COOKIE_SECURE": "off",
        "CUSTOMER_IDS_API_SEARCH_BURST": "1000",
    }
    api = ApiSettings.from_env({**defaults, **api_env})
    return TestClient(create_app(build_context(settings, api)))


class ApiProcess:
    """`python -m customer_ids.tools.api` on a free loopback port, its log in a file."""

    def __init__(self, scenario: Scenario, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"api-{uuid.uuid4().hex[:6]}.log"
        defaults = {
            "CUSTOMER_IDS_API_TOKENS": TOKENS.env,
            "CUSTOMER_IDS_SEARCH_KEY": KEY_A,
            "CUSTOMER_IDS_REVERSE_INDEX": "on",
        }
        self.env = scenario.env(**{**defaults, **env})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ApiProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "customer_ids.tools.api", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the API exited ({self.proc.returncode}):\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"the API did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
