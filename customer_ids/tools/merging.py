"""`customer-ids merge` and `unmerge`: record a CustomerMergeRequested, as a CRM's merge hook or
an MDM tool would, wait until the service applied it, and say what came of it.

The command changes nothing itself: the service applies the request in its own transaction
(consumer/merges.py). Applied, the merged customer's state in Redis shows it; refused, the
request is on the dead-letter topic with the reason, which the command prints (exit 65).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import Message

from customer_ids.adapters.log_reader import end_offsets, read_topics_to_end
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError, CustomerIdsError, ValidationError
from customer_ids.domain.events import MERGE, UNMERGE, CustomerMergeRequested, now_utc
from customer_ids.store.factory import number_store, redis_client
from customer_ids.store.ports import StoredAssignment
from customer_ids.tools.forget import Requested, produce_requests, wait_until_applied


class MergeRefusedByServiceError(CustomerIdsError):
    """The service refused the request (its reason is the message); nothing changed."""


@dataclass(frozen=True)
class MergeResult:
    customer_key: str
    state: StoredAssignment


def merge_request(merged: str, survivor: str | None, requested_by: str) -> CustomerMergeRequested:
    """A merge (survivor given) or an unmerge of `merged`; ConfigError saying what is wrong."""
    names = {"merged": merged, **({"survivor": survivor} if survivor else {})}
    parts: dict[str, tuple[str, str]] = {}
    for role, text in names.items():
        source, slash, customer = text.partition("/")
        if not slash or not source or not customer:
            raise ConfigError(
                f"--{role} {text!r}: name a customer as SOURCE_SYSTEM/CUSTOMER_ID, e.g. crm/42"
            )
        parts[role] = (source, customer)
    try:
        return CustomerMergeRequested.from_record(
            {
                "event_id": str(uuid.uuid4()),
                "action": MERGE if survivor else UNMERGE,
                "merged_source_system": parts["merged"][0],
                "merged_customer_id": parts["merged"][1],
                "survivor_source_system": parts["survivor"][0] if survivor else None,
                "survivor_customer_id": parts["survivor"][1] if survivor else None,
                "requested_at": now_utc(),
                "requested_by": requested_by,
            }
        )
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None


def request_merge(settings: Settings, request: CustomerMergeRequested) -> Requested:
    """Record the request on the merge topic, keyed by the merged customer."""
    codec = framed_codec(
        settings.registry(), settings.merge_topic, "CustomerMergeRequested", register=True
    )
    try:
        landed = produce_requests(
            settings,
            settings.merge_topic,
            [(request.merged_key, codec.encode(request.to_record()))],
            "merge request",
        )
    finally:
        codec.close()
    return landed[0]


def merge_and_wait(
    settings: Settings, request: CustomerMergeRequested, timeout_s: float
) -> MergeResult:
    """Record, wait until applied, and return the merged customer's state now; the
    service's refusal as MergeRefusedByServiceError."""
    before = end_offsets(settings.bootstrap_servers, [settings.dlq_topic], must_exist=True)
    landed = request_merge(settings, request)
    wait_until_applied(settings, settings.merge_topic, [landed], timeout_s)
    refusal = _refusal(settings, landed, {tp: high for tp, (_, high) in before.items()})
    if refusal:
        raise MergeRefusedByServiceError(refusal)
    store = number_store(redis_client(settings), settings.redis_prefix)
    state = store.lookup([request.merged_key]).get(request.merged_key)
    if state is None:  # applied means found: only a Redis wiped this instant lacks it
        raise CustomerIdsError(f"{request.merged_key} not found after the service applied it")
    return MergeResult(request.merged_key, state)


def _refusal(settings: Settings, landed: Requested, start: dict[tuple[str, int], int]) -> str:
    """The reason the service gave for dead-lettering this request, if it did."""
    found: list[str] = []

    def take(message: Message) -> None:
        raw: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        headers = dict(raw)
        if (
            headers.get("source.topic") == settings.merge_topic.encode()
            and headers.get("source.partition") == str(landed.partition).encode()
            and headers.get("source.offset") == str(landed.offset).encode()
        ):
            found.append(headers.get("error.message", b"").decode(errors="replace"))

    read_topics_to_end(settings.bootstrap_servers, {settings.dlq_topic: take}, start=start)
    return found[0] if found else ""


def describe(result: MergeResult, request: CustomerMergeRequested) -> str:
    """The plain answer: what the customer answers with now."""
    state = result.state
    if state.merged_into is not None:
        return (
            f"merged: {result.customer_key} now answers with {state.number} (the number of "
            f"{request.survivor_key}, merged into {state.merged_into}); its own number "
            f"{state.own_assignment.number} is retired, kept as an alias and never issued again"
        )
    return f"{result.customer_key} answers with its own number {state.number} again"
