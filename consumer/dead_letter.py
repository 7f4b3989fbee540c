"""Dead-letter records: the original bytes, untouched, with the reason in headers."""

from __future__ import annotations

from confluent_kafka import Message


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
