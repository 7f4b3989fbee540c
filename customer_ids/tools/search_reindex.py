"""`customer-ids search-reindex`: the search index rewritten under the current key, after a
rotation (README, "The lookup API").

Digests cannot be converted from one key to another: only the raw email and phone can make
new ones, and those live on the input topic alone. So this reads the input topic from the
beginning, and for each customer that has a number adds the digests of its events under
CUSTOMER_IDS_SEARCH_KEY and removes those under CUSTOMER_IDS_SEARCH_KEY_PREVIOUS, in Redis and
in the service's search topic, so a rebuild restores them. Events no newer than a customer's
erasure (`forget`) are left out. Running it twice does no harm. A customer whose events have
left the input topic (past its retention) keeps only the old entries, found while the previous
key is still set.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from confluent_kafka import Message, Producer

from consumer.outputs import sent_ms
from customer_ids.adapters.kafka_io import producer_config
from customer_ids.adapters.log_reader import read_topics_to_end
from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import (
    ConfigError,
    CustomerIdsError,
    DecodeError,
    ValidationError,
)
from customer_ids.domain.events import CustomerCreated
from customer_ids.domain.search_terms import terms_for
from customer_ids.store.factory import number_store, redis_client
from customer_ids.store.ports import Terms, TermsUpdate
from customer_ids.store.terms import RedisTermsStore

log = get_logger(__name__)
BATCH = 5000


@dataclass
class ReindexReport:
    events: int = 0
    skipped: int = 0  # undecodable or invalid: the service dead-lettered them too
    customers_indexed: int = 0


class _Reindex:
    """One pass: digests collected per customer, written a batch at a time. Additive across
    batches (a customer whose events span two adds to what the first wrote); digests under the
    previous key go. An erasure is respected in Redis itself (terms.py), also one applied
    while this runs."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        if settings.search_key is None:
            raise ConfigError("CUSTOMER_IDS_SEARCH_KEY is not set: there is no key to index under")
        self.current = settings.search_key.get_secret_value().encode()
        previous = settings.search_key_previous
        self.previous = previous.get_secret_value().encode() if previous else None
        self.codec = framed_codec(settings.registry(), settings.input_topic, "CustomerCreated")
        self.store = number_store(client, settings.redis_prefix, owner="search-reindex")
        self.terms = RedisTermsStore(client, RedisKeys(settings.redis_prefix))
        self.topic = settings.search_topic
        self.producer = Producer(
            producer_config(settings.bootstrap_servers, {"enable.idempotence": True})
        )
        self.new: dict[str, dict[str, int]] = {}
        self.old: dict[str, set[str]] = {}
        self.report = ReindexReport()

    def take(self, message: Message) -> None:
        self.report.events += 1
        try:
            event = CustomerCreated.from_record(self.codec.decode(message.value()))
        except (DecodeError, ValidationError):
            self.report.skipped += 1
            return
        region = event.country_code
        key = event.customer_key
        # Every email and phone a customer was created with (duplicates upstream may differ),
        # each with when its newest event was sent: an erasure sent later covers it.
        sent = sent_ms(message)
        digests = self.new.setdefault(key, {})
        for digest in terms_for(event.email, event.phone, region, self.current):
            digests[digest] = max(digests.get(digest, 0), sent)
        if self.previous is not None:
            self.old.setdefault(key, set()).update(
                terms_for(event.email, event.phone, region, self.previous)
            )
        if len(self.new) >= BATCH:
            self.flush()

    def flush(self) -> None:
        numbered = self.store.lookup(list(self.new))
        changes = {
            key: TermsUpdate(new, sorted(self.old.get(key, set()) - new.keys()))
            for key, new in self.new.items()
            if key in numbered and (new or self.old.get(key))
        }
        values = self.terms.update(None, changes)
        for customer, value in values.items():
            encoded = value.encode() if value else None  # nothing left: a tombstone
            self.producer.produce(self.topic, key=customer.encode(), value=encoded)
            self.producer.poll(0)
        if self.producer.flush(60):
            raise CustomerIdsError(f"{self.topic} did not take the new digests: run it again")
        self.report.customers_indexed += sum(1 for v in values.values() if Terms.decode(v).digests)
        self.new.clear()
        self.old.clear()


def reindex_search(settings: Settings, client: redis.Redis | None = None) -> ReindexReport:
    """Index every numbered customer of the input topic under the current key (module doc)."""
    work = _Reindex(settings, client or redis_client(settings))
    log.info("search_reindex_started", topic=settings.input_topic)
    read_topics_to_end(
        settings.bootstrap_servers,
        {settings.input_topic: work.take},
        timeout=None,
        progress=lambda handled, left: log.info(
            "search_reindex_progress", events=handled, partitions_left=left
        ),
    )
    work.flush()
    log.info(
        "search_reindex_done",
        events=work.report.events,
        skipped=work.report.skipped,
        customers_indexed=work.report.customers_indexed,
    )
    return work.report
