"""Avro single-object encoding (spec: 0xC3 0x01 + CRC-64-AVRO fingerprint + Avro binary).

Any Avro library can decode our records without a registry, and the fingerprint tells which
schema version wrote each one. Older versions live in schemas/history/ and are read through
Avro's schema resolution into the current reader schema.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from customer_ids.domain.errors import DecodeError

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


def schemas_dir() -> Path:
    """schemas/ inside an installed wheel, else the checkout's top-level schemas/."""
    package = Path(__file__).resolve().parents[1]  # customer_ids/
    packaged = package / "schemas"
    return packaged if packaged.is_dir() else package.parent / "schemas"


def schema_fingerprint(parsed: Any) -> bytes:
    """The 8 bytes that follow the magic: CRC-64-AVRO of the canonical form, little-endian."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class RecordCodec(Protocol):
    """What the service and the tools need of a value codec, whatever the framing."""

    def encode(self, record: dict[str, Any]) -> bytes: ...

    def decode(self, data: bytes | None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AvroCodec:
    """Encodes with the current schema; decodes anything written by a known version of it."""

    name: str
    schema: Any
    header: bytes
    writers: dict[bytes, Any]

    def encode(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self.header)
        fastavro.schemaless_writer(out, self.schema, record)
        return out.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """Decode, or raise DecodeError saying what is wrong with the bytes."""
        if not data:
            raise DecodeError("empty message value")
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoded (no 0xC3 0x01 header)")
        fp = data[2:HEADER_SIZE]
        writer = self.writers.get(fp)
        if writer is None:
            raise DecodeError(f"unknown schema fingerprint {fp.hex()} for {self.name}")
        body = io.BytesIO(data[HEADER_SIZE:])
        try:
            if writer is self.schema:
                record = fastavro.schemaless_reader(body, self.schema, None)
            else:
                record = fastavro.schemaless_reader(body, writer, self.schema)
        except Exception as exc:  # fastavro raises many types for corrupt input
            raise DecodeError(f"corrupt Avro body: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data) - HEADER_SIZE:
            raise DecodeError("trailing bytes after the Avro record")
        if not isinstance(record, dict):
            raise DecodeError("the Avro body is not a record")
        return record


def _without_uuid_logical_type(node: Any) -> Any:
    """uuid logical types read as uuid.UUID objects; we want the strings, and building UUID
    objects costs more than the rest of the decode. The fingerprint is unaffected: the
    Parsing Canonical Form drops logicalType."""
    if isinstance(node, dict):
        if node.get("logicalType") == "uuid":
            return {k: v for k, v in node.items() if k != "logicalType"}
        return {k: _without_uuid_logical_type(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_uuid_logical_type(v) for v in node]
    return node


def _load(path: Path) -> Any:
    """Parsed once, and marked as parsed: fastavro re-parses on every read and write a schema
    that does not carry its `__fastavro_parsed` mark, which was half the cost of each call
    (the mark leaves the fingerprint as it is: the canonical form drops unknown keys)."""
    return parse_schema(_without_uuid_logical_type(json.loads(path.read_text())))


@cache
def codec_for(name: str, directory: Path | None = None) -> AvroCodec:
    """Parse the schema `name` and its history once per process."""
    base = directory or schemas_dir()
    current = _load(base / f"{name}.avsc")
    writers = {schema_fingerprint(current): current}
    history = base / "history"
    if history.is_dir():
        for path in sorted(history.glob(f"{name}.*.avsc")):
            old = _load(path)
            writers.setdefault(schema_fingerprint(old), old)
    return AvroCodec(
        name=name, schema=current, header=MAGIC + schema_fingerprint(current), writers=writers
    )


def customer_created_codec() -> AvroCodec:
    return codec_for("CustomerCreated")


def customer_id_assigned_codec() -> AvroCodec:
    return codec_for("CustomerIdAssigned")
