"""Realistic CustomerCreated events for demos and load tests (no real person's data)."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta

from customer_ids.domain.events import CustomerCreated, now_utc

FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Allen")
SYSTEMS = ("webshop", "crm", "pos")
TYPES = ("INDIVIDUAL", "INDIVIDUAL", "INDIVIDUAL", "BUSINESS")
COUNTRIES = ("DE", "FR", "NL", "GB", "US", "ES", "IT", "PL")


def generate_events(
    count: int, duplicates: float = 0.0, seed: int | None = None
) -> Iterator[CustomerCreated]:
    """`count` new customers; with probability `duplicates` an earlier one is sent again,
    half the time as the very same event (a redelivery), half as a new event (a retry
    upstream). Duplicates come on top of `count`."""
    rng = random.Random(seed)
    sent: list[CustomerCreated] = []
    for _ in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        event = CustomerCreated(
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            customer_id=f"C{rng.getrandbits(48):012x}",
            source_system=rng.choice(SYSTEMS),
            customer_type=rng.choice(TYPES),
            country_code=rng.choice(COUNTRIES),
            occurred_at=now_utc() - timedelta(seconds=rng.randint(0, 60)),
            display_name=f"{first} {last}",
            email=f"{first}.{last}{rng.randint(1, 999)}@example.com".lower(),
            phone=f"+49 30 {rng.randint(1000000, 9999999)}",
        )
        sent.append(event)
        yield event
        if duplicates and rng.random() < duplicates:
            again = rng.choice(sent)
            if rng.random() < 0.5:
                yield again
            else:
                yield dataclasses.replace(again, event_id=str(uuid.uuid4()))
