"""`customer-ids watch`: what a person watches while the service works, a live table of the
newest committed assignments and running counts (read_committed), then a short summary.

The same reader a downstream team would run (its own group, from the beginning), drawn with
rich; no personal data is on the output topic, so nothing here can show any.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from confluent_kafka import Consumer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from customer_ids.adapters.kafka_io import client_config
from customer_ids.domain.errors import DecodeError
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.wire.codec import RecordCodec

SHOWN = 12


@dataclass
class Tally:
    """Running counts of what was committed, for the table and the summary."""

    outputs: int = 0
    undecodable: int = 0
    numbers: dict[str, str] = field(default_factory=dict)  # number -> customer key
    customers: dict[str, str] = field(default_factory=dict)  # customer key -> number
    conflicts: int = 0
    newest: deque[CustomerIdAssigned] = field(default_factory=lambda: deque(maxlen=SHOWN))
    started: float = field(default_factory=time.monotonic)

    def add(self, out: CustomerIdAssigned) -> None:
        self.outputs += 1
        self.newest.appendleft(out)
        owner = self.numbers.setdefault(out.customer_number, out.customer_key)
        number = self.customers.setdefault(out.customer_key, out.customer_number)
        if owner != out.customer_key or number != out.customer_number:
            self.conflicts += 1

    @property
    def repeats(self) -> int:
        """Outputs for customers that already had a number (duplicate or returning events)."""
        return self.outputs - len(self.customers)

    def view(self) -> Group:
        table = Table(title="newest assignments (read_committed)", expand=True)
        for column in ("customer", "number", "sequence", "assigned at"):
            table.add_column(column)
        for out in self.newest:
            table.add_row(
                out.customer_key,
                out.customer_number,
                f"{out.sequence_name} #{out.sequence}",
                out.assigned_at.strftime("%H:%M:%S.%f")[:-3],
            )
        seconds = max(time.monotonic() - self.started, 1e-6)
        counts = (
            f"outputs [bold]{self.outputs:,}[/]  customers [bold]{len(self.customers):,}[/]  "
            f"distinct numbers [bold]{len(self.numbers):,}[/]  repeats {self.repeats:,}  "
            f"conflicts [bold {'red' if self.conflicts else 'green'}]{self.conflicts}[/]  "
            f"undecodable {self.undecodable}  ({self.outputs / seconds:,.0f}/s)"
        )
        return Group(table, Panel(counts))


def watch(
    bootstrap: str,
    topic: str,
    group: str,
    codec: RecordCodec,
    stop: threading.Event,
    *,
    idle_seconds: float = 0,
    console: Console | None = None,
) -> Tally:
    """Follow the topic until `stop`, or `idle_seconds` without a new record (0: never)."""
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": group,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
            },
        )
    )
    consumer.subscribe([topic])
    tally = Tally()
    last_seen = time.monotonic()
    try:
        with Live(tally.view(), console=console, refresh_per_second=4) as live:
            while not stop.is_set():
                for message in consumer.consume(num_messages=500, timeout=0.25):
                    if message.error() is not None:
                        continue
                    last_seen = time.monotonic()
                    try:
                        tally.add(CustomerIdAssigned.from_record(codec.decode(message.value())))
                    except DecodeError:
                        tally.undecodable += 1
                live.update(tally.view())
                # Before the first record (the service still starting) allow two minutes.
                limit = idle_seconds if tally.outputs else max(idle_seconds, 120.0)
                if idle_seconds and time.monotonic() - last_seen > limit:
                    break
    finally:
        consumer.close()
    return tally
