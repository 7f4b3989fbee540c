"""A local schema registry for `stack up --registry`: Apicurio Registry 3.0.9 (Apache 2.0), the
finished Quarkus application Apicurio publishes on Maven Central, in-memory storage, on Java 17.

Its Confluent-compatible API (`/apis/ccompat/v7`) is what the service and confluent-kafka's
serializers talk to. Maven cannot resolve this artifact by coordinates (its parent POM is not
on Central), so the tarball is fetched from Central's own URL and checked against the SHA-1
Central publishes beside it; it is cached outside the checkout, keyed by version.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from customer_ids.stack.processes import StackError, read_pid, require_program, spawn, stop, tail

VERSION = "3.0.9"
CENTRAL = "https://repo.maven.apache.org/maven2/io/apicurio/apicurio-registry-app"
TARBALL = f"apicurio-registry-app-{VERSION}-all.tar.gz"
RUNNER = f"apicurio-registry-app-{VERSION}-runner.jar"
CCOMPAT = "/apis/ccompat/v7"


@dataclass(frozen=True)
class RegistryNode:
    state_dir: Path
    cache_dir: Path
    port: int = 18081
    management_port: int = 18082

    @property
    def url(self) -> str:
        """What SCHEMA_REGISTRY_URL should say: the Confluent-compatible API."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT}"

    @property
    def app_dir(self) -> Path:
        return self.cache_dir / f"apicurio-registry-{VERSION}"

    @property
    def home(self) -> Path:
        return self.state_dir / "registry"

    @property
    def pid_file(self) -> Path:
        return self.home / "registry.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "registry.log"

    def running_pid(self) -> int | None:
        return read_pid(self.pid_file)

    def fetch(self) -> None:
        """Download and unpack the application once per version, checked by its SHA-1."""
        if (self.app_dir / RUNNER).exists():
            return
        partial = self.app_dir.with_name(self.app_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = partial / TARBALL
        try:
            urllib.request.urlretrieve(f"{CENTRAL}/{VERSION}/{TARBALL}", archive)
            with urllib.request.urlopen(f"{CENTRAL}/{VERSION}/{TARBALL}.sha1", timeout=60) as r:
                expected = r.read().decode().split()[0]
        except (urllib.error.URLError, OSError) as exc:
            raise StackError(
                f"could not download Apicurio Registry {VERSION} from Maven Central: {exc}; "
                "check the network, or point SCHEMA_REGISTRY_URL at a registry you run"
            ) from exc
        actual = hashlib.sha1(archive.read_bytes()).hexdigest()
        if actual != expected:
            raise StackError(f"{TARBALL}: SHA-1 {actual} is not Central's {expected}; try again")
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        archive.unlink()
        partial.rename(self.app_dir)

    def start(self) -> None:
        if self.running_pid() is not None:
            return
        java = require_program("java", "apt-get install -y openjdk-17-jdk-headless")
        self.fetch()
        self.home.mkdir(parents=True, exist_ok=True)
        spawn(
            [
                java,
                "-Xmx384m",
                "-XX:+UseSerialGC",  # two cores shared with Kafka and Redis
                "-Dquarkus.http.host=127.0.0.1",
                f"-Dquarkus.http.port={self.port}",
                "-Dquarkus.management.host=127.0.0.1",
                f"-Dquarkus.management.port={self.management_port}",
                "-jar",
                str(self.app_dir / RUNNER),
            ],
            self.pid_file,
            self.log_file,
            cwd=self.home,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until the Confluent-compatible API answers (about 6 s here, 20+ on a slow day)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                raise StackError(f"the schema registry exited:\n{tail(self.log_file)}")
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=5):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise StackError(
            f"the schema registry did not answer in {timeout:.0f}s:\n{tail(self.log_file)}"
        )

    def stop(self) -> bool:
        return stop(self.pid_file)
