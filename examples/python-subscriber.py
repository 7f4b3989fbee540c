"""Subscribe to customer-ids' CustomerIdAssigned events with confluent-kafka and fastavro.

Standalone: copy this file and schemas/CustomerIdAssigned.avsc, `pip install confluent-kafka
fastavro`, run it. Prints one JSON line per record (partition, offset, key, then the record's
fields; assigned_at in epoch milliseconds) on stdout, problems on stderr.

The values are Avro single-object encoded: 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema's parsing canonical form, then the Avro binary body. The
fingerprint is checked against the schema file given, so a record written with another schema
(say a newer version, once customer-ids adds a field) is reported rather than misread: fetch the
new .avsc then. The topic is written by a transactional producer, so read it read_committed:
a read_uncommitted reader would also see the outputs of aborted transactions.

    python python-subscriber.py --bootstrap-servers 127.0.0.1:19092 --group-id my-team
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Next to this file in the customer-ids repository; pass --schema for your own copy.
DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "CustomerIdAssigned.avsc"


class UndecodableError(Exception):
    """A value that is not a CustomerIdAssigned written with our schema."""


class AssignedDecoder:
    def __init__(self, schema_path: Path) -> None:
        self.schema = parse_schema(json.loads(schema_path.read_text(encoding="utf-8")))
        canonical = to_parsing_canonical_form(self.schema)
        self.fingerprint = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise UndecodableError("empty value")
        if len(value) < HEADER_SIZE or value[: len(MAGIC)] != MAGIC:
            raise UndecodableError("not Avro single-object encoded (no 0xC3 0x01 header)")
        if value[len(MAGIC) : HEADER_SIZE] != self.fingerprint:
            found = value[len(MAGIC) : HEADER_SIZE].hex()
            raise UndecodableError(f"written with another schema (fingerprint {found})")
        body = io.BytesIO(value[HEADER_SIZE:])
        try:
            record = fastavro.schemaless_reader(body, self.schema, None)
        except Exception as exc:  # fastavro raises many kinds for corrupt bytes
            raise UndecodableError(f"corrupt Avro body: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(value) - HEADER_SIZE or not isinstance(record, dict):
            raise UndecodableError("corrupt Avro body: trailing bytes")
        return record


def _json_value(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):  # timestamp-millis, as the number on the wire
        return (value - EPOCH) // timedelta(milliseconds=1)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_line(message: Message, record: dict[str, Any]) -> str:
    key = message.key()
    head = {
        "partition": message.partition(),
        "offset": message.offset(),
        "key": key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key,
    }
    return json.dumps(
        {**head, **record}, default=_json_value, ensure_ascii=False, separators=(",", ":")
    )


def subscribe(args: argparse.Namespace) -> int:
    decoder = AssignedDecoder(args.schema)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group_id,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # Commit (in the background) only offsets of records already printed.
            "enable.auto.offset.store": False,
        }
    )
    consumer.subscribe([args.topic])
    records = undecodable = 0
    last_record = time.monotonic()
    try:
        while args.max_records is None or records < args.max_records:
            message = consumer.poll(0.2)
            if message is None:
                if args.idle_exit_s and time.monotonic() - last_record >= args.idle_exit_s:
                    break
                continue
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    print(f"subscriber: {error}", file=sys.stderr)
                continue
            last_record = time.monotonic()
            records += 1
            try:
                print(json_line(message, decoder.decode(message.value())), flush=True)
            except UndecodableError as exc:
                undecodable += 1
                where = f"{message.topic()}-{message.partition()} offset {message.offset()}"
                print(f"subscriber: undecodable record at {where}: {exc}", file=sys.stderr)
            consumer.store_offsets(message)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()  # commits the stored offsets
    print(f"subscriber: {records} records, {undecodable} undecodable", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:19092")
    parser.add_argument("--topic", default="customer.id-assigned")
    parser.add_argument("--group-id", default="customer-ids-python-subscriber")
    parser.add_argument("--schema", type=Path, default=DEFAULT_SCHEMA)
    parser.add_argument("--max-records", type=int, help="exit after this many records")
    parser.add_argument("--idle-exit-s", type=float, help="exit after this long with no record")
    return subscribe(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
