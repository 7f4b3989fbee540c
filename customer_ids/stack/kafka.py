"""Apache Kafka in KRaft mode, run from jars that Maven collects: one node, or a cluster of
nodes with combined broker and controller roles (`KafkaCluster`).

The jars are cached outside the checkout, keyed by the Kafka version, so only the first start
downloads anything. Settings follow shared/kafka-local.md: one partition for the internal
topics and a small cleaner buffer; replication of the internal topics (offsets, transaction
state) follows the number of nodes, with min.insync.replicas 2 from three nodes on.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from customer_ids.stack.processes import (
    StackError,
    kill,
    read_pid,
    require_program,
    spawn,
    stop,
    tail,
)

POM = Path(__file__).resolve().parent / "pom.xml"
if not POM.exists():  # running from a checkout rather than an installed wheel
    POM = Path(__file__).resolve().parents[2] / "stack" / "kafka" / "pom.xml"

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
JVM_OPTS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
]

LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


def kafka_version() -> str:
    """The Kafka version pinned in the pom (one version for every org.apache.kafka jar)."""
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if match is None:
        raise StackError(f"{POM} does not set <kafka.version>")
    return match.group(1)


@dataclass(frozen=True)
class KafkaTls:
    """A secure node (`stack up --secure`): one SASL_SSL listener for clients and brokers with
    SCRAM-SHA-512 users made at format time, the controller listener on its own (SASL_SSL with
    PLAIN: SCRAM between controllers is not supported), and ACLs (StandardAuthorizer)."""

    keystore: Path  # PEM: key and chain
    truststore: Path  # PEM: the CA
    users: tuple[tuple[str, str], ...]  # SCRAM (name, password); must include `broker`, `admin`
    controller_password: str
    super_users: tuple[str, ...] = ("admin", "broker", "controller")
    # Where it listens and the name clients reach it by (the certificate's): loopback and
    # localhost for the local stack, all interfaces and the service name in a container.
    bind_host: str = "127.0.0.1"
    host: str = "localhost"

    def password(self, user: str) -> str:
        return dict(self.users)[user]

    def client(self, user: str) -> dict[str, str]:
        """librdkafka settings of a client logged in as `user`."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.truststore),
        }


@dataclass(frozen=True)
class KafkaNode:
    """Where one local broker lives: its ports and its folders."""

    state_dir: Path
    cache_dir: Path
    port: int = 19092
    controller_port: int = 19093
    node_id: int = 1
    name: str = "kafka"
    # The cluster's controllers as (node id, controller port); empty: this node alone.
    voters: tuple[tuple[int, int], ...] = ()
    # An extra SASL_PLAINTEXT listener with PLAIN users (name, password), for security tests.
    sasl_port: int | None = None
    sasl_users: tuple[tuple[str, str], ...] = ()
    tls: KafkaTls | None = None

    @property
    def bootstrap(self) -> str:
        # A secure node is reached by the name its certificate carries.
        return f"{self._host}:{self.port}"

    @property
    def _host(self) -> str:
        return self.tls.host if self.tls else "127.0.0.1"

    def admin_config(self) -> dict[str, Any]:
        """What the stack's own admin client needs to reach this node."""
        return {
            "bootstrap.servers": self.bootstrap,
            **(self.tls.client("admin") if self.tls else {}),
        }

    @property
    def libs(self) -> Path:
        return self.cache_dir / f"kafka-{kafka_version()}" / "libs"

    @property
    def home(self) -> Path:
        return self.state_dir / self.name

    @property
    def size(self) -> int:
        return max(1, len(self.voters))

    def _cluster_config(self) -> list[str]:
        """Internal topics replicated on every node up to three; two in sync to write."""
        replicas = min(3, self.size)
        min_isr = 2 if replicas >= 3 else 1
        voters = self.voters or ((self.node_id, self.controller_port),)
        return [
            f"node.id={self.node_id}",
            "controller.quorum.voters="
            + ",".join(f"{node}@{self._host}:{port}" for node, port in voters),
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
        ]

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    def running_pid(self) -> int | None:
        return read_pid(self.pid_file)

    def fetch_jars(self) -> None:
        """Collect the broker's jars with Maven, once per Kafka version."""
        if (self.libs / f"kafka_2.13-{kafka_version()}.jar").exists():
            return
        mvn = require_program("mvn", "apt-get install -y maven")
        partial = self.libs.with_name("libs.partial")
        result = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(POM),
                DEPENDENCY_PLUGIN,
                "-DincludeScope=runtime",
                f"-DoutputDirectory={partial}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                "Maven could not collect the Kafka jars from Maven Central:\n"
                + (result.stdout + result.stderr)[-3000:]
            )
        partial.rename(self.libs)

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(self.config_text(self.home / "data"))
        log4j = self.home / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=self.log_file))
        return config

    def config_text(self, data: Path) -> str:
        """server.properties of this node, its logs in `data`."""
        return "\n".join(
            [
                "process.roles=broker,controller",
                *self._cluster_config(),
                *(self._secure_config() if self.tls else self._plain_config()),
                f"log.dirs={data}",
                "num.partitions=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.num.partitions=1",
                "group.initial.rebalance.delay.ms=0",
                "log.cleaner.dedupe.buffer.size=16777216",
                # Short transaction aborts for zombies killed by the fault tests.
                "transaction.abort.timed.out.transaction.cleanup.interval.ms=5000",
                "",
            ]
        )

    def _plain_config(self) -> list[str]:
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}{self._sasl_listener}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}{self._sasl_listener}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
            *self._sasl_config(),
        ]

    def _secure_config(self) -> list[str]:
        """No plain-text listener at all: clients and brokers on SASL_SSL with SCRAM, the
        controllers on their own SASL_SSL listener with PLAIN; nothing allowed without an ACL."""
        assert self.tls is not None
        tls = self.tls
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        controller = tls.controller_password
        return [
            f"listeners=SECURE://{tls.bind_host}:{self.port},"
            f"CONTROLLER://{tls.bind_host}:{self.controller_port}",
            f"advertised.listeners=SECURE://{tls.host}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SECURE",
            "listener.security.protocol.map=SECURE:SASL_SSL,CONTROLLER:SASL_SSL",
            "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.secure.scram-sha-512.sasl.jaas.config={scram} "
            f'username="broker" password="{tls.password("broker")}";',
            f"listener.name.controller.plain.sasl.jaas.config={plain} "
            f'username="controller" password="{controller}" user_controller="{controller}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.truststore}",
            "ssl.client.auth=none",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=" + ";".join(f"User:{u}" for u in tls.super_users),
            "allow.everyone.if.no.acl.found=false",
        ]

    @property
    def _sasl_listener(self) -> str:
        return f",SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}" if self.sasl_port else ""

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def _sasl_config(self) -> list[str]:
        if not self.sasl_port:
            return []
        users = " ".join(f'user_{name}="{password}"' for name, password in self.sasl_users)
        return [
            "sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f"{users};",
        ]

    def _java(self, main: str, *args: str) -> list[str]:
        java = require_program("java", "apt-get install -y openjdk-17-jdk-headless")
        logs = self.home / "logs"
        return [
            java,
            *JVM_OPTS,
            f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def new_cluster_id(self) -> str:
        return (
            subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

    def start(self, cluster_id: str | None = None) -> None:
        """Format the data dir once (all nodes of a cluster with one id), then start the
        broker in the background."""
        if self.running_pid() is not None:
            return
        self.fetch_jars()
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = cluster_id or self.new_cluster_id()
            fmt = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(config),
                    *self._scram_users(),
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        spawn(
            self._java("kafka.Kafka", str(config)),
            self.pid_file,
            self.home / "logs" / "stdout.log",
            self.home,
        )

    def scram_arguments(self) -> list[str]:
        """kafka-storage format's arguments that create the SCRAM users."""
        return self._scram_users()

    def _scram_users(self) -> list[str]:
        """SCRAM users exist before the first start, so brokers can log in to each other."""
        if not self.tls:
            return []
        out = []
        for name, password in self.tls.users:
            out += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return out

    def wait_ready(self, timeout: float = 90.0, brokers: int = 1) -> None:
        """Wait until the broker lists itself (and `brokers` in all); fail fast with its log
        if it died."""
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only the stack needs it

        admin = AdminClient({**self.admin_config(), "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                raise StackError(
                    "the Kafka broker exited during start-up; the end of its log:\n"
                    + tail(self.log_file)
                    + "\n"
                    + tail(self.home / "logs" / "stdout.log")
                )
            try:
                if len(admin.list_topics(timeout=2).brokers) >= brokers:
                    return
            except Exception:
                time.sleep(0.5)
        raise StackError(
            f"the Kafka broker did not answer on {self.bootstrap} within {timeout:.0f}s; "
            "the end of its log:\n" + tail(self.log_file)
        )

    def stop(self) -> bool:
        return stop(self.pid_file, grace_seconds=60)

    def kill(self) -> bool:
        """SIGKILL: a broker crash, for fault tests."""
        return kill(self.pid_file)
