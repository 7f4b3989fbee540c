"""Remember every rendering the service has used, in Kafka, and refuse one that could render
a number already issued (DESIGN §6). The records live in the compacted watermark topic under
`config/<key>`, beside the counters' floors: the log is the record of truth, Redis may forget.
"""

from __future__ import annotations

from confluent_kafka import Message, Producer

from customer_ids.adapters.kafka_io import producer_config
from customer_ids.adapters.log_reader import read_topics_to_end
from customer_ids.adapters.logs import get_logger
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError
from customer_ids.domain.number_spaces import Rendering, history_problems

log = get_logger(__name__)
PREFIX = b"config/"


def read_renderings(settings: Settings) -> list[Rendering]:
    found: list[Rendering] = []

    def on_record(message: Message) -> None:
        key, value = message.key() or b"", message.value()
        if key.startswith(PREFIX) and value:
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


def guard_renderings(settings: Settings) -> None:
    """Raise ConfigError when this configuration could render a number issued under an
    earlier one; otherwise record its renderings (once each) and go on."""
    history = read_renderings(settings)
    sequences = settings.router.sequences
    problems = history_problems(sequences, history)
    if problems:
        raise ConfigError("; ".join(problems))
    known = {r.key for r in history}
    new = [r for r in map(Rendering.of, sequences) if r.key not in known]
    if not new:
        return
    producer = Producer(producer_config(settings.bootstrap_servers, {"enable.idempotence": True}))
    for rendering in new:
        producer.produce(
            settings.watermark_topic, key=PREFIX + rendering.key.encode(), value=rendering.to_json()
        )
        log.info("rendering_recorded", rendering=rendering.describe())
    if producer.flush(30):
        raise ConfigError(
            f"could not record the number format in {settings.watermark_topic}; check that "
            "the service may write to it"
        )
