"""What a committed batch tells the metrics and the log: one canonical line per batch."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Message

from consumer.assign import BatchNumbers
from consumer.metrics import ServiceMetrics
from consumer.outputs import position
from customer_ids.adapters.logs import get_logger

log = get_logger(__name__)
USAGE_WARNING = 0.9


@dataclass
class StageClock:
    """Where a batch's time goes, stage by stage, for its log line: the profile of a running
    service without a profiler."""

    started: float = field(default_factory=time.monotonic)
    ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last = self.started

    def lap(self, stage: str) -> float:
        """Seconds since the previous lap (or the start), recorded under `stage`."""
        now = time.monotonic()
        seconds = now - self.last
        self.last = now
        self.ms[stage] = round(self.ms.get(stage, 0.0) + seconds * 1000, 1)
        return seconds

    @property
    def seconds(self) -> float:
        """From the start to the last lap."""
        return self.last - self.started


def account_batch(
    metrics: ServiceMetrics,
    batch: list[Message],
    dead: list[tuple[Message, Exception]],
    numbers: BatchNumbers | None,
    stages: StageClock,
) -> None:
    seconds = stages.seconds
    metrics.consumed.inc(len(batch))
    metrics.batch_size.observe(len(batch))
    metrics.batch_seconds.observe(seconds)
    for message, error in dead:
        metrics.dead_lettered.labels(reason=type(error).__name__).inc()
        log.warning(
            "dead_lettered",
            reason=type(error).__name__,
            error=str(error)[:300],
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
        )
    duplicates = 0
    if numbers is not None:
        done = numbers.assigned
        duplicates = sum(1 for a in done if a.duplicate)
        metrics.duplicates.inc(duplicates)
        per_counter = Counter(a.assignment.counter for a in done if not a.duplicate)
        for counter, count in per_counter.items():
            metrics.assigned.labels(sequence=counter).inc(count)
        report_usage(metrics, numbers.usage)
    log.info(
        "batch_committed",
        records=len(batch),
        assigned=numbers.new_count if numbers else 0,
        duplicates=duplicates,
        dead_lettered=len(dead),
        partitions=sorted({m.partition() for m in batch}),
        first_offset=min(position(m)[2] for m in batch),
        last_offset=max(position(m)[2] for m in batch),
        ms=round(seconds * 1000, 1),
        stages_ms=stages.ms,
    )


def report_usage(metrics: ServiceMetrics, usage: dict[str, float]) -> None:
    """How full each bounded (scrambled) counter is; a warning from 90 %."""
    for counter, used in usage.items():
        metrics.sequence_usage.labels(counter=counter).set(used)
        if used >= USAGE_WARNING:
            log.warning(
                "sequence_nearly_exhausted",
                counter=counter,
                used=round(used, 4),
                hint="widen {seq:N:scrambled} before it runs out",
            )
