"""Which failures of a Confluent-framed record blame the record (dead letter) and which blame
the registry (the batch is tried again): a registry that stops answering must never send good
records to the dead-letter topic, and one hostile record must never stop a partition."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from consumer.outputs import decode_batch
from customer_ids.adapters import schema_registry
from customer_ids.adapters.schema_registry import (
    RegistryConfig,
    RegistryFraming,
    RegistryUnavailableError,
)
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import DecodeError, TemporaryError

ROUTER = Settings().router
FRAMED = b"\x00\x00\x00\x00\x07" + b"\x02x"  # magic 0, schema id 7, a body


def answering(status: int) -> Iterator[str]:
    """A stand-in registry that answers every request with `status` (a unit test's fake)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error_code": status * 100, "message": "no"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def framing(url: str, retries: int | None = None) -> RegistryFraming:
    """`retries`: the client's own retries of a failed request (its default takes seconds)."""
    if retries is None:
        return RegistryFraming(RegistryConfig(url).client(), "in", "CustomerCreated")
    client = SchemaRegistryClient({"url": url, "max.retries": retries})
    return RegistryFraming(client, "in", "CustomerCreated")


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_schema_id_the_registry_refuses_blames_the_record(status: int) -> None:
    for url in answering(status):
        codec = framing(url)
        with pytest.raises(DecodeError, match=f"refused by the registry \\({status}\\)"):
            codec.decode(FRAMED)
        codec.close()


@pytest.mark.parametrize("status", [401, 429, 500, 503])
def test_a_registry_that_fails_blames_nobody(status: int) -> None:
    for url in answering(status):
        codec = framing(url)
        with pytest.raises(RegistryUnavailableError):
            codec.decode(FRAMED)
        codec.close()


def test_an_unreachable_registry_blames_nobody() -> None:
    codec = framing("http://127.0.0.1:1")
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        codec.decode(FRAMED)
    codec.close()


class Record:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


class Raising:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def encode(self, record: dict[str, Any]) -> bytes:
        raise AssertionError("not used")

    def decode(self, data: bytes | None) -> dict[str, Any]:
        raise self.error


def test_any_other_failure_of_one_record_dead_letters_it() -> None:
    """A schema resolution error (a plain Exception in fastavro) used to escape decode_batch
    and restart the worker on the same record, forever."""
    record = Record(FRAMED)
    decoded = decode_batch([record], Raising(Exception("Schema mismatch")), ROUTER)  # type: ignore[list-item]
    assert [type(e) for _, e in decoded.bad] == [DecodeError]
    assert decoded.good == []


def test_a_temporary_failure_is_not_a_dead_letter() -> None:
    with pytest.raises(TemporaryError):
        decode_batch([Record(FRAMED)], Raising(RegistryUnavailableError("down")), ROUTER)  # type: ignore[list-item]


def test_server_errors_for_one_schema_id_end_as_that_records_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registry answering 500 for one id used to hold the partition forever: after the tries
    and the time allowed, the record is dead-lettered with the reason."""
    clock = [1000.0]
    monkeypatch.setattr(schema_registry, "_now", lambda: clock[0])
    for url in answering(500):
        codec = framing(url, retries=0)
        for _ in range(schema_registry.SERVER_ERROR_TRIES):
            with pytest.raises(RegistryUnavailableError):
                codec.decode(FRAMED)  # still within the time allowed
        clock[0] += schema_registry.SERVER_ERROR_SECONDS
        with pytest.raises(DecodeError, match="answered 500 for schema id 7"):
            codec.decode(FRAMED)
        codec.close()


def test_an_unreachable_registry_is_waited_out_however_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(schema_registry, "_now", lambda: clock[0])
    codec = framing("http://127.0.0.1:1", retries=0)
    for _ in range(2 * schema_registry.SERVER_ERROR_TRIES):
        clock[0] += schema_registry.SERVER_ERROR_SECONDS
        with pytest.raises(RegistryUnavailableError, match="unreachable"):
            codec.decode(FRAMED)
