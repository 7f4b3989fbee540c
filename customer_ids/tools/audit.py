"""`customer-ids audit`: an independent watcher of what the service committed.

It reads the output topic read_committed from the beginning, every partition (a duplicate
number lives under two customer keys, so on two partitions: one reader must see them all), then
follows it. It rebuilds its book from the topic on every start rather than checkpointing: the
book is cheap to rebuild (see README, "Watching the promise"), and a checkpoint would be one
more state that can go back in time. It writes nothing anywhere; its consumer group only makes
its progress visible to Kafka's own tools.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from consumer.renderings import read_import_ranges, read_renderings
from customer_ids.adapters.kafka_io import client_config
from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.audit import AuditBook, Finding
from customer_ids.domain.errors import CustomerIdsError, DecodeError, ValidationError
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.domain.number_spaces import Rendering
from customer_ids.wire.headers import IMPORTED_HEADER

log = get_logger(__name__)
LAG_REPORT_S = 5.0
PARTITION_CHECK_S = 60.0


@dataclass
class AuditMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records = Counter("customer_ids_audit_records", "Output records read", registry=r)
        self.shared = Counter(
            "customer_ids_audit_numbers_shared",
            "Numbers seen given to a second customer",
            registry=r,
        )
        self.two_numbers = Counter(
            "customer_ids_audit_customers_with_two_numbers",
            "Customers seen with a second number",
            registry=r,
        )
        self.invalid = Counter(
            "customer_ids_audit_invalid_numbers",
            "Outputs whose number does not validate against its sequence",
            ["sequence"],
            registry=r,
        )
        self.gaps = Counter(
            "customer_ids_audit_sequence_gaps",
            "Runs of counter values never committed (a warning)",
            ["counter"],
            registry=r,
        )
        self.lag = Gauge(
            "customer_ids_audit_lag_records", "Output records not read yet", registry=r
        )
        self.customers = Gauge("customer_ids_audit_customers", "Customers in the book", registry=r)
        self.caught_up = Gauge(
            "customer_ids_audit_caught_up", "1 once the whole topic has been read", registry=r
        )

    def count(self, finding: Finding) -> None:
        if finding.kind == "number_shared":
            self.shared.inc()
        elif finding.kind == "two_numbers":
            self.two_numbers.inc()
        elif finding.kind == "invalid_number":
            self.invalid.labels(sequence=finding.counter).inc()
        else:
            self.gaps.labels(counter=finding.counter).inc()


@dataclass
class Auditor:
    """The read loop: records into the book, findings into metrics and one log line each."""

    settings: Settings
    group: str
    gap_grace_s: float
    metrics: AuditMetrics = field(default_factory=AuditMetrics)
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        renderings, raised = _history(self.settings)
        self.book = AuditBook(self.settings.router, renderings, raised)
        self.codec = framed_codec(
            self.settings.registry(), self.settings.output_topic, "CustomerIdAssigned"
        )
        self.consumer = Consumer(
            client_config(
                self.settings.bootstrap_servers,
                {
                    "group.id": self.group,
                    "isolation.level": "read_committed",
                    "enable.auto.commit": True,  # progress shown to Kafka's tools; we never seek
                    "enable.auto.offset.store": True,
                    "enable.partition.eof": True,  # how we know the whole topic was read
                },
            )
        )
        self._partitions: set[int] = set()
        self._at_end: set[int] = set()
        self._caught_up_at: float | None = None
        self._next_lag = 0.0
        self._next_partition_check = 0.0
        self._records = 0  # read since the last poll, for the records metric

    @property
    def caught_up(self) -> bool:
        return self._caught_up_at is not None

    def run(self, stop: threading.Event, until_caught_up: bool = False) -> None:
        log.info("audit_started", topic=self.settings.output_topic, group=self.group)
        try:
            while not stop.is_set():
                self._assign_new_partitions()
                for message in self.consumer.consume(num_messages=1000, timeout=0.5):
                    self._handle(message)
                self._after_poll()
                if until_caught_up and self.caught_up:
                    return
        finally:
            self.consumer.close()

    def _assign_new_partitions(self) -> None:
        """Every partition from its beginning, including any added while we run."""
        if time.monotonic() < self._next_partition_check:
            return
        # Until the service has created the topic, look again soon.
        wait = PARTITION_CHECK_S if self._partitions else 1.0
        self._next_partition_check = time.monotonic() + wait
        topic = self.settings.output_topic
        meta = self.consumer.list_topics(topic, timeout=30).topics.get(topic)
        found = set(meta.partitions) if meta is not None and meta.error is None else set()
        new = found - self._partitions
        if new:
            self._partitions |= new
            self.consumer.incremental_assign(
                [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(new)]
            )
            log.info("audit_partitions_assigned", partitions=sorted(new))

    def _handle(self, message: Message) -> None:
        error = message.error()
        partition = message.partition()
        assert partition is not None
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._at_end.add(partition)
            else:
                log.warning("audit_consumer_error", error=str(error))
            return
        self._at_end.discard(partition)
        self._records += 1
        try:
            out = CustomerIdAssigned.from_record(self.codec.decode(message.value()))
        except (DecodeError, ValidationError, KeyError, TypeError) as exc:
            self._report(
                Finding("invalid_number", "?", "", "", f"undecodable output: {exc}"[:300]),
                message,
            )
            return
        headers: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        imported = any(name == IMPORTED_HEADER for name, _ in headers)
        for finding in self.book.observe(out, time.monotonic(), imported):
            self._report(finding, message)

    def _after_poll(self) -> None:
        # Counted once per poll, not per record: a metric takes a lock on each update.
        self.metrics.records.inc(self._records)
        self._records = 0
        now = time.monotonic()
        if self._partitions and self._at_end >= self._partitions and not self.caught_up:
            self._caught_up_at = now
            self.metrics.caught_up.set(1)
            log.info("audit_caught_up", customers=self.book.customers)
        # A value is a gap only when still missing `grace` after the whole topic was read:
        # until then it may sit in an open transaction or a partition not read yet.
        if self._caught_up_at is not None and now - self._caught_up_at >= self.gap_grace_s:
            for finding in self.book.overdue_gaps(now - self.gap_grace_s):
                self._report(finding, None)
        if now >= self._next_lag:
            self._next_lag = now + LAG_REPORT_S
            self.metrics.lag.set(self._lag())
            self.metrics.customers.set(self.book.customers)

    def _lag(self) -> int:
        behind = 0
        for tp in self.consumer.position(self.consumer.assignment()):
            if tp.partition in self._at_end:
                continue  # read to the end; the high watermark may sit past a commit marker
            low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                behind += high - (tp.offset if tp.offset >= 0 else max(low, 0))
        return behind

    def _report(self, finding: Finding, message: Message | None) -> None:
        self.findings.append(finding)
        self.metrics.count(finding)
        where = {}
        if message is not None:
            where = {"partition": message.partition(), "offset": message.offset()}
        (log.error if finding.is_error else log.warning)(
            f"audit_{finding.kind}",
            counter=finding.counter,
            number=finding.number,
            customer=finding.customer_key,
            detail=finding.detail,
            **where,
        )


def _history(
    settings: Settings,
) -> tuple[list[Rendering], dict[str, list[tuple[int, int]]]]:
    """Every rendering the service recorded (earlier formats included) and the ranges imports
    raised counters over; none when its watermark topic does not exist yet."""
    try:
        return read_renderings(settings), read_import_ranges(settings)
    except CustomerIdsError as exc:
        log.warning("audit_no_rendering_history", error=str(exc)[:200])
        return [], {}


def run_audit(
    settings: Settings,
    *,
    group: str,
    metrics_port: int,
    gap_grace_s: float,
    until_caught_up: bool,
) -> int:
    """The command: serve metrics, audit until SIGTERM (or until caught up); exit 1 when an
    error-level finding was seen in a run that ends by itself, so a one-shot check can fail."""
    from customer_ids.adapters.health import HealthServer  # noqa: PLC0415

    auditor = Auditor(settings, group=group, gap_grace_s=gap_grace_s)
    health = None
    if metrics_port:
        health = HealthServer(
            auditor.metrics.registry,
            metrics_port,
            lambda: None if auditor.caught_up else "reading the output topic from the beginning",
        )
        health.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        auditor.run(stop, until_caught_up=until_caught_up)
    except KeyboardInterrupt:
        pass
    finally:
        if health is not None:
            health.stop()
    errors = [f for f in auditor.findings if f.is_error]
    log.info(
        "audit_stopped",
        customers=auditor.book.customers,
        findings=len(auditor.findings),
        errors=len(errors),
    )
    return 1 if until_caught_up and errors else 0
