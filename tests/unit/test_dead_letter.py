"""A dead letter always fits the producer's message.max.bytes: one too large to copy whole is
written as a reference (the reason, where it came from, a prefix of its bytes)."""

from __future__ import annotations

from functools import cache

from confluent_kafka import KafkaException, Producer
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.dead_letter import (
    MESSAGE_MAX_BYTES,
    PREFIX_BYTES,
    TRUNCATED_HEADER,
    dead_letter_record,
    record_size,
)

ERROR_HEADERS: list[tuple[str, bytes]] = [
    ("error.class", b"DecodeError"),
    ("error.message", b"x" * 1000),
    ("source.topic", b"customer.created"),
    ("source.partition", b"3"),
    ("source.offset", b"123456"),
]


@cache
def _producer(max_bytes: int) -> Producer:
    # No broker needed: librdkafka checks a record's size when it is produced.
    return Producer({"message.max.bytes": max_bytes, "log_level": 0})


def librdkafka_accepts(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], max_bytes: int
) -> bool:
    producer = _producer(max_bytes)
    try:
        producer.produce("dlq", key=key, value=value, headers=list(headers))
    except KafkaException:
        return False
    finally:
        producer.purge()
        producer.flush(0)
    return True


def test_the_record_from_the_issue_is_written_as_a_reference() -> None:
    value = b"\x00" * 999_800
    assert not librdkafka_accepts(b"c1", value, ERROR_HEADERS, MESSAGE_MAX_BYTES)
    key, out, headers = dead_letter_record(b"c1", value, ERROR_HEADERS, MESSAGE_MAX_BYTES)
    assert key == b"c1"
    assert out == value[:PREFIX_BYTES]
    assert dict(headers)[TRUNCATED_HEADER] == b"true"
    assert dict(headers)["source.size"] == b"999800"
    assert headers[: len(ERROR_HEADERS)] == ERROR_HEADERS  # the reason and where it came from
    assert librdkafka_accepts(key, out, headers, MESSAGE_MAX_BYTES)


def test_a_record_that_fits_is_copied_whole() -> None:
    value = b"v" * 10_000
    assert dead_letter_record(b"k", value, ERROR_HEADERS, MESSAGE_MAX_BYTES) == (
        b"k",
        value,
        ERROR_HEADERS,
    )


def test_a_huge_key_and_huge_original_headers_are_cut_too() -> None:
    key = b"k" * 600_000
    headers = [*ERROR_HEADERS, ("trace", b"t" * 999_000), ("tenant", b"acme")]
    k, v, out = dead_letter_record(key, b"v" * 10, headers, MESSAGE_MAX_BYTES)
    assert k == key[:PREFIX_BYTES]
    assert v == b"v" * 10
    found = dict(out)
    assert found["source.key_size"] == b"600000"
    assert found["dead_letter.dropped_headers"] == b"1"
    assert found["tenant"] == b"acme"
    assert "trace" not in found
    assert librdkafka_accepts(k, v, out, MESSAGE_MAX_BYTES)


@settings(max_examples=60, deadline=None)
@given(
    key_size=st.one_of(st.none(), st.integers(0, 1_100_000)),
    value_size=st.one_of(st.none(), st.integers(0, 1_100_000)),
    header_sizes=st.lists(st.integers(0, 600_000), max_size=3),
    max_bytes=st.sampled_from([1000, 5000, 100_000, MESSAGE_MAX_BYTES]),
)
def test_every_dead_letter_fits_what_librdkafka_allows(
    key_size: int | None, value_size: int | None, header_sizes: list[int], max_bytes: int
) -> None:
    key = None if key_size is None else b"k" * key_size
    value = None if value_size is None else b"v" * value_size
    headers = ERROR_HEADERS[:2] + [(f"h{i}", b"h" * n) for i, n in enumerate(header_sizes)]
    k, v, out = dead_letter_record(key, value, headers, max_bytes)
    assert record_size(k, v, out) <= max_bytes
    assert librdkafka_accepts(k, v, out, max_bytes)
    if record_size(key, value, headers) <= max_bytes:
        assert (k, v, out) == (key, value, headers)
    else:
        assert dict(out)[TRUNCATED_HEADER] == b"true"
        assert v is None or v == (value or b"")[: len(v)]
