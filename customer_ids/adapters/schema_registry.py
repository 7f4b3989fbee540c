"""Values in either framing: Avro single-object encoding (no registry needed), or the Confluent
wire format (magic 0, a 4-byte schema id, Avro binary) with schemas in a registry that speaks
Confluent's API (Apicurio's `/apis/ccompat/v7` does), through confluent-kafka's own
AvroSerializer and AvroDeserializer.

Readers accept both framings by the first byte, so a topic can move from one to the other
while old records stay readable; writers use the configured one. Subjects follow the topic
name (`<topic>-value`). The schema is registered at start-up under the subject's compatibility
level (CUSTOMER_IDS_SCHEMA_COMPATIBILITY when the subject has none): an incompatible change
stops the start with a message, never a record.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.serialization import MessageField, SerializationContext

from customer_ids.domain.errors import ConfigError, DecodeError, TemporaryError, reason_of
from customer_ids.wire.codec import AvroCodec, codec_for, schemas_dir

CONFLUENT_MAGIC = 0


class RegistryUnavailableError(TemporaryError):
    """The registry did not answer: the batch is tried again, no record is blamed."""


# The registry client's transport (httpx2 where installed, else httpx) fails with these when it
# cannot reach the registry; OSError covers the rest of the socket layer.
UNREACHABLE = (httpx.TransportError, OSError)


def _blames_the_record(exc: SchemaRegistryError) -> bool:
    """A 4xx about one schema id (unknown, malformed) is that record's failure; a 5xx, a
    timeout, throttling or refused credentials is the registry's, and passes."""
    status = exc.http_status_code
    return 400 <= status < 500 and status not in (401, 403, 408, 429)


@dataclass(frozen=True)
class RegistryConfig:
    url: str
    user: str = ""
    password: str = ""
    compatibility: str = "BACKWARD"

    def client(self) -> SchemaRegistryClient:
        conf: dict[str, Any] = {"url": self.url}
        if self.user:
            conf["basic.auth.user.info"] = f"{self.user}:{self.password}"
        return SchemaRegistryClient(conf)


def _strings_for_uuids(record: dict[str, Any], _: SerializationContext | None) -> dict[str, Any]:
    """Our events carry uuids as strings, as the single-object path reads them."""
    return {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in record.items()}


# A registry that answers 5xx for one schema id, again and again while it answers others, is
# broken for that id: after this many tries over at least this long, the record's failure
# (dead-lettered with the reason; `customer-ids dlq replay` sends it again once it is fixed)
# rather than a partition held forever. An unreachable registry is an outage: always waited out.
SERVER_ERROR_TRIES = 5
SERVER_ERROR_SECONDS = 30.0
_now = time.monotonic  # tests move this clock


class RegistryFraming:
    """One topic's values in the Confluent wire format, schemas in the registry."""

    def __init__(
        self, client: SchemaRegistryClient, topic: str, schema_name: str, text: str | None = None
    ) -> None:
        """`text`: the schema itself, when not schemas/<schema_name>.avsc (tests)."""
        text = text or (schemas_dir() / f"{schema_name}.avsc").read_text()
        self.subject = f"{topic}-value"
        self._context = SerializationContext(topic, MessageField.VALUE)
        # Registering is idempotent and gives the id; a lookup by content is not portable
        # (Apicurio's compares the text as stored). register() ran first, so this only finds.
        self._serializer = AvroSerializer(client, text, conf={"auto.register.schemas": True})
        self._deserializer = AvroDeserializer(client, text, from_dict=_strings_for_uuids)
        self._client = client
        self._text = text
        self._server_errors: dict[bytes, tuple[int, float]] = {}  # schema id -> tries, since

    def register(self, compatibility: str) -> int:
        """Register the schema under the subject (first setting its compatibility level when it
        has none); ConfigError when the registry refuses it as incompatible."""
        try:
            try:
                self._client.get_compatibility(self.subject)
            except SchemaRegistryError as exc:
                if exc.http_status_code != 404:
                    raise
                self._client.set_compatibility(self.subject, compatibility)
            return self._client.register_schema(self.subject, Schema(self._text, "AVRO"))
        except SchemaRegistryError as exc:
            if exc.http_status_code in (401, 403):
                raise ConfigError(
                    f"the schema registry refuses our credentials ({exc.http_status_code}): "
                    "check SCHEMA_REGISTRY_USER and SCHEMA_REGISTRY_PASSWORD"
                ) from None
            if exc.http_status_code in (409, 422):
                raise ConfigError(
                    f"the registry refuses schemas/{self.subject.removesuffix('-value')}'s "
                    f"schema for subject {self.subject}: {exc.error_message}. The change is "
                    "not compatible with the versions already registered under the subject's "
                    "compatibility level: make it compatible (add fields with defaults, remove "
                    "only fields that have one) or move to a new topic"
                ) from None
            raise RegistryUnavailableError(f"schema registry: {exc}") from exc
        except UNREACHABLE as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc!r}") from exc

    def close(self) -> None:
        """Close the registry client's HTTP connections."""
        self._client.close()

    def encode(self, record: dict[str, Any]) -> bytes:
        try:
            data = self._serializer(record, self._context)
        except (SchemaRegistryError, *UNREACHABLE) as exc:
            raise RegistryUnavailableError(f"schema registry: {exc!r}") from exc
        if not isinstance(data, bytes):
            raise RegistryUnavailableError("the Avro serializer returned no bytes")
        return data

    def decode(self, data: bytes) -> dict[str, Any]:
        """The record, DecodeError when the bytes are to blame (dead-lettered), or
        RegistryUnavailableError when the registry is (the batch is tried again)."""
        try:
            record = self._deserializer(data, self._context)
        except SchemaRegistryError as exc:
            if _blames_the_record(exc):
                reason = f"schema id refused by the registry ({exc.http_status_code})"
                raise DecodeError(f"{reason}: {exc.error_message}") from None
            self._give_up_on_server_errors(data[1:5], exc)
            raise RegistryUnavailableError(f"schema registry: {exc}") from exc
        except UNREACHABLE as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc!r}") from exc
        except Exception as exc:
            # A corrupt body, or a writer schema that cannot be read as ours (a schema
            # resolution error): this record's failure alone.
            raise DecodeError(f"Confluent-framed record not readable: {reason_of(exc)}") from None
        if not isinstance(record, dict):
            raise DecodeError("the Avro body is not a record")
        self._server_errors.pop(data[1:5], None)
        return record

    def _give_up_on_server_errors(self, schema_id: bytes, exc: SchemaRegistryError) -> None:
        """DecodeError once this schema id has met server errors long enough."""
        if exc.http_status_code < 500:
            return  # 401/403/408/429: credentials or load, the registry's state, not the id's
        tries, since = self._server_errors.get(schema_id, (0, _now()))
        tries += 1
        self._server_errors[schema_id] = (tries, since)
        waited = _now() - since
        if tries >= SERVER_ERROR_TRIES and waited >= SERVER_ERROR_SECONDS:
            del self._server_errors[schema_id]
            raise DecodeError(
                f"the schema registry answered {exc.http_status_code} for schema id "
                f"{int.from_bytes(schema_id, 'big')} {tries} times over {waited:.0f}s: "
                f"{exc.error_message}"
            ) from None


@dataclass
class FramedCodec:
    """Decodes both framings by the first byte; encodes with the registry when there is one."""

    single: AvroCodec
    registry: RegistryFraming | None = None

    def encode(self, record: dict[str, Any]) -> bytes:
        if self.registry is not None:
            return self.registry.encode(record)
        return self.single.encode(record)

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data and data[0] == CONFLUENT_MAGIC:
            if self.registry is None:
                raise DecodeError(
                    "Confluent-framed value (magic byte 0) but no SCHEMA_REGISTRY_URL is set"
                )
            return self.registry.decode(data)
        return self.single.decode(data)


def framed_codec(
    registry: RegistryConfig | None, topic: str, schema_name: str, *, register: bool = False
) -> FramedCodec:
    """The codec of one topic: single-object alone without a registry, both with one."""
    single = codec_for(schema_name)
    if registry is None:
        return FramedCodec(single)
    framing = RegistryFraming(registry.client(), topic, schema_name)
    if register:
        framing.register(registry.compatibility)
    return FramedCodec(single, framing)
