"""The serialization point for "these numbers are free" (DESIGN §5.6): the watermark topic's one
partition, read in offset order by every instance alike.

Every batch that hands out new numbers writes, inside its transaction, one watermark record per
counter (its highest new value). After the batch's records reached the broker and before it
commits, the batch reads this partition read_committed up to its own first record. A
read_committed reader cannot pass an open transaction, so by then every claim before ours has
committed or aborted, and we have seen exactly the committed ones. Our lowest new value of each
counter must lie above every value committed before us, or the batch aborts. Committed claims
therefore rise strictly in one total order that Kafka keeps and every instance reads alike:
Redis only proposes the values, and nothing Redis forgets or restores can make two committed
claims overlap. Configuration changes are ordered the same way (`config/` records).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from customer_ids.adapters.kafka_io import client_config
from customer_ids.adapters.logs import get_logger
from customer_ids.domain.errors import TemporaryError
from customer_ids.domain.number_spaces import Rendering
from customer_ids.store.ports import StateBehindLogError

log = get_logger(__name__)
CONFIG_PREFIX = b"config/"


class ClaimsBehindError(TemporaryError):
    """The claims before ours did not resolve in time (an open transaction of another
    instance): abort and try the batch again."""


def watermark_counter(key: bytes | None) -> str:
    """Watermark keys are `counter@transactional_id` (older ones just `counter`)."""
    return (key or b"").decode(errors="replace").split("@", 1)[0]  # counters hold no '@'


class ClaimsLog:
    """A read_committed follower of the watermark partition: the highest committed value per
    counter and every recorded rendering, as far as it has read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.floors: dict[str, int] = {}
        self.renderings: list[Rendering] = []
        # Every committed record below this offset has been read (a record, or the end the
        # broker reported: a read_committed end never passes an open transaction).
        self.reached = 0
        self._consumer = Consumer(
            client_config(
                bootstrap,
                {
                    "group.id": f"customer-ids-claims-{uuid.uuid4()}",  # assign() only
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                    # The fence waits for this reader: ask the broker often when at the end.
                    "fetch.wait.max.ms": 5,
                    "fetch.error.backoff.ms": 50,
                },
            )
        )
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def close(self) -> None:
        self._consumer.close()

    # ------------------------------------------------------------------ reading
    def catch_up(self) -> None:
        """Take in what has already arrived, without waiting."""
        while (message := self._consumer.poll(0)) is not None:
            self._take(message)

    def read_until(self, offset: int, timeout_s: float) -> None:
        """Read every committed record below `offset`; ClaimsBehindError after `timeout_s`
        (a transaction before `offset` still open)."""
        deadline = time.monotonic() + timeout_s
        while self.reached < offset:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClaimsBehindError(
                    f"{self.topic} not readable up to offset {offset} within {timeout_s:.0f}s "
                    f"(read to {self.reached}): a transaction before ours is still open"
                )
            message = self._consumer.poll(min(remaining, 0.2))
            if message is not None:
                self._take(message)

    def _take(self, message: Message) -> None:
        error = message.error()
        offset = message.offset()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF and offset is not None:
                self.reached = max(self.reached, offset)
            else:
                log.warning("claims_read_error", error=error.str()[:200])
            return
        assert offset is not None
        self.reached = max(self.reached, offset + 1)
        key, value = message.key() or b"", message.value()
        if key.startswith(CONFIG_PREFIX):
            if value:
                try:
                    self.renderings.append(Rendering.from_json(value.decode()))
                except (ValueError, TypeError):
                    log.warning("rendering_record_unreadable", key=key.decode(errors="replace"))
            return
        try:
            highest = int(value or 0)
        except ValueError:
            log.warning("watermark_unreadable", key=key.decode(errors="replace"))
            return
        counter = watermark_counter(key)
        if highest > self.floors.get(counter, 0):
            self.floors[counter] = highest

    # ------------------------------------------------------------------ the check
    def check_claims(self, firsts: Mapping[str, int], own_offset: int, timeout_s: float) -> None:
        """Our batch's first new value per counter, its first record at `own_offset`: every
        value must be above all committed before us, else StateBehindLogError (Redis handed
        out numbers another instance had already committed: it went back)."""
        self.read_until(own_offset, timeout_s)
        refuse_taken(firsts, self.floors)


def refuse_taken(firsts: Mapping[str, int], floors: Mapping[str, int]) -> None:
    """StateBehindLogError unless each counter's first new value is above its floor."""
    taken = {c: v for c, v in firsts.items() if v <= floors.get(c, 0)}
    if taken:
        raise StateBehindLogError(
            "numbers already committed by a batch before ours: "
            + ", ".join(
                f"{c} from {v} (committed up to {floors[c]})" for c, v in sorted(taken.items())
            )
        )
