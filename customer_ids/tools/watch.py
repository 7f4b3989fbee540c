"""`customer-ids watch`: what a person watches while the service works, a live table of the
newest committed assignments and running counts (read_committed), then a short summary.

The same reader a downstream team would run (its own group, from the beginning), drawn with
rich; no personal data is on the output topic, so nothing here can show any.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from customer_ids.domain.errors import DecodeError
from customer_ids.domain.events import CustomerIdAssigned
from customer_ids.tools.tail import committed
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
        # A merged customer answers with the survivor's number (an alias); its own stays its.
        owner = self.numbers.setdefault(out.own_number, out.customer_key)
        number = self.customers.setdefault(out.customer_key, out.own_number)
        if owner != out.customer_key or number != out.own_number:
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
    """Follow the topic until `stop`, or `idle_seconds` without a new record (0: never;
    before the first record, the service still starting, two minutes)."""
    tally = Tally()
    reader = committed(
        bootstrap,
        topic,
        group,
        codec,
        stop,
        idle_seconds=idle_seconds,
        first_wait_s=120.0,
        poll_s=0.25,
    )
    with closing(reader), Live(tally.view(), console=console, refresh_per_second=4) as live:
        for batch in reader:
            for event in batch:
                if isinstance(event, DecodeError):
                    tally.undecodable += 1
                else:
                    tally.add(event)
            live.update(tally.view())
    return tally
