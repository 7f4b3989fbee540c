"""The service as a real subprocess, so tests can SIGTERM, SIGKILL and restart it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.services import Endpoints


@dataclass(frozen=True)
class Scenario:
    """uuid-named topics, group and Redis prefix: tests never see each other's data."""

    endpoints: Endpoints
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def input_topic(self) -> str:
        return f"t-{self.tag}.created"

    @property
    def output_topic(self) -> str:
        return f"t-{self.tag}.assigned"

    @property
    def dlq_topic(self) -> str:
        return f"t-{self.tag}.dlq"

    @property
    def watermark_topic(self) -> str:
        return f"t-{self.tag}.watermarks"

    @property
    def search_topic(self) -> str:
        return f"t-{self.tag}.search-terms"

    @property
    def erasure_topic(self) -> str:
        return f"t-{self.tag}.erasures"

    @property
    def merge_topic(self) -> str:
        return f"t-{self.tag}.merges"

    @property
    def redis_prefix(self) -> str:
        return f"t-{self.tag}:"

    def create_topics(self) -> Scenario:
        """The service's topics with its partition counts, before anything is sent (a producer
        sending first would have the broker create the input with one partition)."""
        from consumer.bootstrap import topic_specs  # noqa: PLC0415
        from customer_ids.adapters.kafka_io import ensure_topics  # noqa: PLC0415
        from customer_ids.config.settings import Settings  # noqa: PLC0415

        settings = Settings.from_env(self.env())
        ensure_topics(settings.bootstrap_servers, topic_specs(settings))
        return self

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.endpoints.bootstrap,
                "REDIS_URL": self.endpoints.redis_url,
                "CUSTOMER_IDS_INPUT_TOPIC": self.input_topic,
                "CUSTOMER_IDS_OUTPUT_TOPIC": self.output_topic,
                "CUSTOMER_IDS_DLQ_TOPIC": self.dlq_topic,
                "CUSTOMER_IDS_WATERMARK_TOPIC": self.watermark_topic,
                "CUSTOMER_IDS_SEARCH_TOPIC": self.search_topic,
                "CUSTOMER_IDS_ERASURE_TOPIC": self.erasure_topic,
                "CUSTOMER_IDS_MERGE_TOPIC": self.merge_topic,
                "CUSTOMER_IDS_GROUP_ID": f"t-{self.tag}",
                "CUSTOMER_IDS_REDIS_PREFIX": self.redis_prefix,
                "CUSTOMER_IDS_TRANSACTIONAL_ID": f"t-{self.tag}-1",
                "CUSTOMER_IDS_PARTITIONS": "3",
                "CUSTOMER_IDS_METRICS_PORT": "0",
                "CUSTOMER_IDS_LOG_FORMAT": "json",
                "CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS": "20000",
            }
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env


class ServiceProcess:
    """`customer-ids serve` in a subprocess with its log in a file."""

    def __init__(self, scenario: Scenario, log_dir: Path, name: str = "svc", **env: str) -> None:
        self.scenario = scenario
        self.env = scenario.env(**env)
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "customer_ids.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # so kill() takes the supervisor and its workers
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"service exited ({self.proc.returncode}):\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.log()[-3000:]}")

    def terminate(self, timeout: float = 40.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the supervisor and every worker at once: a crash of the whole service."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP the supervisor and its workers: an instance idle (a GC pause, a frozen VM)
        with everything it knew still in memory."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
