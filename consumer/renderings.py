"""Remember every rendering the service has used, in Kafka, and refuse one that could render
a number already issued (DESIGN §6). The records live in the compacted watermark topic under
`config/<key>`, beside the counters' floors: the log is the record of truth, Redis may forget.
"""

from __future__ import annotations

from confluent_kafka import Message

from consumer.claims import (
    CONFIG_PREFIX,
    IMPORT_PREFIX,
    LEGACY_PREFIX,
    ClaimsLog,
    import_record,
)
from consumer.kafka_txn import KafkaTransaction, RetryBatchError
from customer_ids.adapters.log_reader import read_topics_to_end
from customer_ids.adapters.logs import get_logger
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError
from customer_ids.domain.number_spaces import Rendering, history_problems, legacy_problems

log = get_logger(__name__)
PREFIX = CONFIG_PREFIX


def read_renderings(settings: Settings) -> list[Rendering]:
    found: list[Rendering] = []

    def on_record(message: Message) -> None:
        key, value = message.key() or b"", message.value()
        if key.startswith(PREFIX) and not key.startswith(LEGACY_PREFIX) and value:
            try:
                found.append(Rendering.from_json(value.decode()))
            except (ValueError, TypeError):
                log.warning("rendering_record_unreadable", key=key.decode(errors="replace"))

    read_topics_to_end(
        settings.bootstrap_servers,
        {settings.watermark_topic: on_record},
        timeout=None,
        must_exist=True,  # an unreadable history must not read as an empty one
    )
    return found


def read_import_ranges(settings: Settings) -> dict[str, list[tuple[int, int]]]:
    """Per counter the ranges imports raised it over (`below`+1 .. `highest`): values the
    service never issues there, which the auditor must not count as gaps."""
    found: dict[str, list[tuple[int, int]]] = {}

    def on_record(message: Message) -> None:
        if not (message.key() or b"").startswith(IMPORT_PREFIX):
            return
        try:
            record = import_record(message.value())
        except ValueError:
            log.warning("import_record_unreadable", key=(message.key() or b"").decode())
            return
        for counter, highest in record["highest"].items():
            below = record["below"].get(counter, 0)
            found.setdefault(counter, []).append((below + 1, highest))

    read_topics_to_end(
        settings.bootstrap_servers,
        {settings.watermark_topic: on_record},
        timeout=None,
        must_exist=True,
    )
    return found


def guard_renderings(settings: Settings, transaction: KafkaTransaction, claims: ClaimsLog) -> None:
    """Raise ConfigError when this configuration could render a number issued under an
    earlier one; otherwise record its renderings and go on.

    Two instances starting at the same moment with conflicting formats must not both pass:
    the renderings are written in a transaction and checked against everything committed
    before them in the one partition (consumer/claims.py), so of two conflicting starts the
    later one sees the earlier and refuses, and its records are aborted."""
    sequences = settings.router.sequences
    transaction.begin()
    try:
        for rendering in map(Rendering.of, sequences):
            transaction.produce(
                settings.watermark_topic,
                key=PREFIX + rendering.key.encode(),
                value=rendering.to_json().encode(),
                claim=True,
            )
        transaction.flush()
        if transaction.claimed is None:
            raise RetryBatchError("the rendering records were not delivered")
        # Well inside our own transaction's timeout: past it the broker aborts ours.
        wait_s = min(settings.kafka_call_timeout_s, settings.transaction_timeout_ms / 2000)
        claims.read_until(transaction.claimed, wait_s)
        problems = history_problems(sequences, claims.renderings)
        problems += legacy_problems(sequences, claims.legacy_shapes)
    except BaseException:
        transaction.abort()
        raise
    if problems:
        transaction.abort()
        raise ConfigError("; ".join(problems))
    transaction.commit_records()
    known = {r.key for r in claims.renderings}
    for rendering in map(Rendering.of, sequences):
        if rendering.key not in known:
            log.info("rendering_recorded", rendering=rendering.describe())
