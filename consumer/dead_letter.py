"""Dead-letter records: the original bytes, untouched, with the reason in headers.

A dead letter must always be writable, or the record behind it stops its partition. One that
would pass the producer's message.max.bytes (the bad record plus its error headers) is written
as a reference instead: the headers that fit, a prefix of the bytes, `dead_letter.truncated`
and the original sizes. The source topic, partition and offset in its headers lead to the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message

Headers = list[tuple[str, bytes]]

MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes, which we keep
PREFIX_BYTES = 1024  # enough of a reference's bytes to recognise what was sent
TRUNCATED_HEADER = "dead_letter.truncated"
DROPPED_HEADER = "dead_letter.dropped_headers"
# librdkafka counts key, value and headers against message.max.bytes plus a record's framing
# (36 bytes of varints), and a header's two lengths as varints of up to 5 bytes each.
RECORD_OVERHEAD = 64
HEADER_OVERHEAD = 10


def dead_letter_headers(message: Message, error: Exception) -> list[tuple[str, str | bytes | None]]:
    """Headers an operator needs to find, understand and replay the record."""
    headers: list[tuple[str, str | bytes | None]] = [
        ("error.class", type(error).__name__.encode()),
        ("error.message", str(error)[:1000].encode()),
        ("source.topic", str(message.topic()).encode()),
        ("source.partition", str(message.partition()).encode()),
        ("source.offset", str(message.offset()).encode()),
    ]
    original = message.headers() or []
    if isinstance(original, dict):
        original = list(original.items())
    kept = [(k, v if isinstance(v, bytes) else str(v or "").encode()) for k, v in original]
    return headers + [(k, v) for k, v in kept if not k.startswith(("error.", "source."))]


def header_size(name: str, value: bytes) -> int:
    return len(name.encode()) + len(value) + HEADER_OVERHEAD


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """An upper bound of the size librdkafka checks against message.max.bytes."""
    return (
        RECORD_OVERHEAD
        + len(key or b"")
        + len(value or b"")
        + sum(header_size(name, v) for name, v in headers)
    )


def dead_letter_record(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, str | bytes | None]],
    max_bytes: int = MESSAGE_MAX_BYTES,
    prefix_bytes: int = PREFIX_BYTES,
) -> tuple[bytes | None, bytes | None, Headers]:
    """The (key, value, headers) to write for a dead letter: the record as it came when it
    fits in `max_bytes`, else a reference to it that always fits.

    A reference keeps the headers in order while they fit (put the reason and the source
    first, as dead_letter_headers does) and counts the rest in `dead_letter.dropped_headers`.
    """
    given: Headers = [(name, _as_bytes(v)) for name, v in headers]
    if record_size(key, value, given) <= max_bytes:
        return key, value, given
    marks: Headers = [(TRUNCATED_HEADER, b"true"), ("source.size", str(len(value or b"")).encode())]
    short_key = key
    if key is not None and len(key) > prefix_bytes:
        short_key = key[:prefix_bytes]
        marks.append(("source.key_size", str(len(key)).encode()))
    short_value = None if value is None else value[:prefix_bytes]
    dropped_mark = (DROPPED_HEADER, str(len(given)).encode())  # its widest value
    excess = record_size(short_key, short_value, [*marks, dropped_mark]) - max_bytes
    if excess > 0 and short_value:  # only with a tiny max_bytes
        cut = min(excess, len(short_value))
        short_value, excess = short_value[: len(short_value) - cut], excess - cut
    if excess > 0 and short_key:
        short_key = short_key[: max(0, len(short_key) - excess)]
    budget = max_bytes - record_size(short_key, short_value, [*marks, dropped_mark])
    kept: Headers = []
    for name, v in given:
        if header_size(name, v) <= budget:
            kept.append((name, v))
            budget -= header_size(name, v)
    dropped = len(given) - len(kept)
    if dropped:
        marks.append((DROPPED_HEADER, str(dropped).encode()))
    return short_key, short_value, kept + marks


def _as_bytes(value: str | bytes | None) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value or "").encode()
