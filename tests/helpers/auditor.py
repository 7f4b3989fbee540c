"""`customer-ids audit` as a real subprocess: its metrics scraped over HTTP, its log parsed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.own_redis import free_port
from tests.helpers.service import Scenario


class AuditorProcess:
    def __init__(self, scenario: Scenario, log_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"audit-{uuid.uuid4().hex[:6]}.log"
        self.args = ["--metrics-port", str(self.port), "--group", f"t-{scenario.tag}-audit", *args]
        self.env = scenario.env()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AuditorProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "customer_ids.cli", "audit", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def wait(self, timeout: float = 240.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def log_events(self) -> list[dict[str, object]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def findings(self) -> list[str]:
        """The event names of the finding lines, e.g. audit_number_shared."""
        kinds = ("number_shared", "two_numbers", "invalid_number", "sequence_gap")
        return [
            str(e["event"])
            for e in self.log_events()
            if e["event"] in {f"audit_{k}" for k in kinds}
        ]

    def metrics(self) -> dict[str, float]:
        """Every sample as name{labels} -> value."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def wait_for_metric(self, name: str, value: float, timeout: float = 240.0) -> dict[str, float]:
        """Poll /metrics until `name` reaches `value`; fail with the log at the deadline."""
        deadline = time.monotonic() + timeout
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"auditor exited: {self.log_path.read_text()[-3000:]}")
            try:
                seen = self.metrics()
            except OSError:
                seen = {}
            if seen.get(name, -1) >= value:
                return seen
            time.sleep(0.25)
        raise AssertionError(
            f"{name} never reached {value}: {seen}\n{self.log_path.read_text()[-3000:]}"
        )
