"""Avro single-object encoding: round trip, header, and every kind of bad bytes."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer_ids.domain.errors import DecodeError
from customer_ids.domain.events import CustomerCreated, now_utc
from customer_ids.wire.codec import (
    MAGIC,
    codec_for,
    customer_created_codec,
    customer_id_assigned_codec,
    schemas_dir,
)


def event() -> CustomerCreated:
    return CustomerCreated(
        str(uuid.uuid4()),
        "C1",
        "crm",
        "BUSINESS",
        "DE",
        now_utc(),
        display_name="Ada Lovelace",
        attributes={"tier": "gold"},
    )


def test_round_trip_keeps_every_field() -> None:
    codec = customer_created_codec()
    original = event()
    decoded = CustomerCreated.from_record(codec.decode(codec.encode(original.to_record())))
    assert decoded == original
    assert decoded.display_name == "Ada Lovelace"
    assert decoded.attributes == {"tier": "gold"}


def test_header_is_the_avro_spec_single_object_marker_and_fingerprint() -> None:
    codec = customer_created_codec()
    data = codec.encode(event().to_record())
    assert data[:2] == MAGIC
    assert data[2:10] == codec.header[2:]
    # The Avro spec's CRC-64-AVRO of the schema "int" (little-endian bytes), as a known vector.
    from customer_ids.wire.codec import schema_fingerprint  # noqa: PLC0415

    assert schema_fingerprint("int").hex() == "8f5c393f1ad57572"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b"hello world", "not Avro single-object"),
        (MAGIC + b"\x01" * 8 + b"\x00", "unknown schema fingerprint"),
    ],
)
def test_bad_bytes_raise_decode_error_saying_why(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        customer_created_codec().decode(data)


def test_truncated_and_padded_records_are_rejected() -> None:
    codec = customer_created_codec()
    data = codec.encode(event().to_record())
    with pytest.raises(DecodeError, match="corrupt"):
        codec.decode(data[:-5])
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode(data + b"\x00")


@given(st.binary(max_size=300))
def test_decoder_never_raises_anything_but_decode_error(data: bytes) -> None:
    codec = customer_created_codec()
    with contextlib.suppress(DecodeError):
        codec.decode(data)


@given(st.binary(max_size=120))
def test_decoder_with_valid_header_never_raises_anything_but_decode_error(body: bytes) -> None:
    codec = customer_created_codec()
    with contextlib.suppress(DecodeError):
        codec.decode(codec.header + body)


def test_reader_reads_records_of_an_older_schema_version(tmp_path: Path) -> None:
    """Schema evolution: v0 lacked `attributes`; the current reader fills in its default."""
    current = json.loads((schemas_dir() / "CustomerCreated.avsc").read_text())
    old = {**current, "fields": [f for f in current["fields"] if f["name"] != "attributes"]}
    (tmp_path / "history").mkdir()
    (tmp_path / "CustomerCreated.avsc").write_text(json.dumps(current))
    (tmp_path / "history" / "CustomerCreated.v0.avsc").write_text(json.dumps(old))
    old_writer = codec_for.__wrapped__("CustomerCreated", tmp_path / "history" / "..")
    from customer_ids.wire.codec import AvroCodec, _load, schema_fingerprint  # noqa: PLC0415

    v0 = _load(tmp_path / "history" / "CustomerCreated.v0.avsc")
    writer = AvroCodec("CustomerCreated", v0, MAGIC + schema_fingerprint(v0), {})
    record = event().to_record()
    del record["attributes"]
    data = writer.encode(record)
    decoded = old_writer.decode(data)
    assert decoded["attributes"] == {}
    assert decoded["customer_id"] == "C1"


def test_every_schema_the_codecs_hold_is_marked_parsed() -> None:
    # Unmarked, fastavro parsed the schema again on every single read and write: half of
    # what each record cost (issue 21).
    for codec in (customer_created_codec(), customer_id_assigned_codec()):
        assert "__fastavro_parsed" in codec.schema
        assert all("__fastavro_parsed" in writer for writer in codec.writers.values())
