"""Merges as rules, without servers: the stored form, the request's checks, the order of a
batch's requests (consumer/merges.py against a fake store) and the auditor's rules."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.merges import MergeRefusedError, apply_merges, merge_claims
from customer_ids.domain.audit import AuditBook
from customer_ids.domain.errors import ValidationError
from customer_ids.domain.events import (
    MERGE,
    UNMERGE,
    CustomerIdAssigned,
    CustomerMergeRequested,
)
from customer_ids.domain.numbers import NumberTemplate
from customer_ids.domain.sequences import Router
from customer_ids.domain.sequences import Sequence as NumberSequence
from customer_ids.store.ports import StoredAssignment

AT = datetime(2026, 12, 7, tzinfo=UTC)


def own(value: int) -> StoredAssignment:
    return StoredAssignment("CU", value, f"N-{value}")


class FakeStore:
    """What apply_merges uses of the Redis store, in memory."""

    def __init__(self, entries: Mapping[str, StoredAssignment]) -> None:
        self.entries = dict(entries)
        self.links: dict[str, set[str]] = {}
        self.writes = 0

    @contextlib.contextmanager
    def locked(self, names: Sequence[str]) -> Iterator[Any]:
        yield FakeLease()

    def merge_generation(self) -> int:
        return self.writes

    def lookup(self, keys: Sequence[str]) -> dict[str, StoredAssignment]:
        return {k: self.entries[k] for k in keys if k in self.entries}

    def merged_into(self, keys: Sequence[str]) -> dict[str, set[str]]:
        return {k: set(self.links.get(k, set())) for k in keys}

    def apply_merges(
        self,
        epoch: str,
        generation: int,
        entries: Mapping[str, tuple[StoredAssignment, StoredAssignment]],
        links: Any,
    ) -> int:
        assert generation == self.writes  # the view was read at this generation
        for key, (old, _) in entries.items():
            assert self.entries[key] == old  # compare-and-set against what was read
        self.writes += 1
        self.entries.update({key: new for key, (_, new) in entries.items()})
        for survivor, merged, add in links:
            group = self.links.setdefault(survivor, set())
            (group.add if add else group.discard)(merged)
        return self.writes


class FakeLease:
    def check(self) -> None:
        pass


def req(action: str, merged: str, survivor: str | None = None) -> CustomerMergeRequested:
    system, _, customer = (survivor or "").partition("/")
    m_system, _, m_customer = merged.partition("/")
    return CustomerMergeRequested.from_record(
        {
            "event_id": str(uuid.uuid4()),
            "action": action,
            "merged_source_system": m_system,
            "merged_customer_id": m_customer,
            "survivor_source_system": system or None,
            "survivor_customer_id": customer or None,
            "requested_at": AT,
            "requested_by": "test",
        }
    )


def run(store: FakeStore, *requests: CustomerMergeRequested) -> Any:
    batch: list[Any] = [(None, r) for r in requests]
    return apply_merges(batch, store, "epoch")  # type: ignore[arg-type]


def test_the_stored_form_keeps_the_own_number_while_merged() -> None:
    merged = own(7).merged("crm/S", own(3))
    assert (merged.counter, merged.value, merged.number) == ("CU", 3, "N-3")
    decoded = StoredAssignment.decode(merged.encode())
    assert decoded == merged
    assert decoded.own_assignment == own(7)
    assert StoredAssignment.decode(own(7).encode()) == own(7)  # the v1 form reads as before


def test_a_chain_resolves_and_an_unmerge_gives_the_own_number_back() -> None:
    store = FakeStore({"a/A": own(1), "b/B": own(2), "c/C": own(3)})
    run(store, req(MERGE, "c/C", "b/B"), req(MERGE, "b/B", "a/A"))
    assert store.entries["c/C"].number == "N-1" and store.entries["c/C"].merged_into == "b/B"
    assert store.entries["b/B"].number == "N-1" and store.entries["b/B"].merged_into == "a/A"
    outcome = run(store, req(UNMERGE, "b/B"))
    assert store.entries["b/B"] == own(2)
    assert store.entries["c/C"].number == "N-2"  # follows its survivor, no longer merged away
    assert [c.customer_key for c in outcome.changes] == ["b/B", "c/C"]


def test_refusals_change_nothing_and_say_why() -> None:
    store = FakeStore({"a/A": own(1), "b/B": own(2), "c/C": own(3)})
    run(store, req(MERGE, "b/B", "a/A"))
    before = dict(store.entries)
    outcome = run(
        store,
        req(MERGE, "x/none", "a/A"),
        req(MERGE, "c/C", "x/none"),
        req(MERGE, "c/C", "c/C"),
        req(MERGE, "c/C", "b/B"),
        req(MERGE, "b/B", "c/C"),
    )
    reasons = [str(error) for _, error in outcome.refused]
    assert all(isinstance(error, MergeRefusedError) for _, error in outcome.refused)
    assert reasons == [
        "customer x/none has no number: nothing to merge",
        "survivor x/none has no number: create it first",
        "customer c/C cannot be merged into itself",
        "survivor b/B is itself merged into a/A: merge into a/A instead",
        "customer b/B is already merged into a/A: unmerge it first",
    ]
    assert store.entries == before and outcome.changes == []


def test_a_repeated_request_writes_the_same_state_again() -> None:
    store = FakeStore({"a/A": own(1), "b/B": own(2)})
    request = req(MERGE, "b/B", "a/A")
    run(store, request)
    state = dict(store.entries)
    again = run(store, request)
    assert store.entries == state
    assert [c.assignment for c in again.changes] == [state["b/B"]]
    assert run(store, req(UNMERGE, "a/A")).refused == []  # not merged: as it is


def test_a_request_is_checked_when_decoded() -> None:
    with pytest.raises(ValidationError, match="neither merge nor unmerge"):
        req("split", "b/B", "a/A")
    with pytest.raises(ValidationError, match="names no survivor"):
        req(UNMERGE, "b/B", "a/A")
    with pytest.raises(ValidationError, match="survivor_source_system is empty"):
        req(MERGE, "b/B")


def assigned(key: str, number: str, value: int, **merge: Any) -> CustomerIdAssigned:
    system, _, customer = key.partition("/")
    return CustomerIdAssigned(
        str(uuid.uuid4()), str(uuid.uuid4()), customer, system, number, "CU", value, AT, **merge
    )


def test_the_auditor_takes_a_retired_number_and_an_alias_for_what_they_are() -> None:
    template = NumberTemplate.parse("CU-{seq:8}-{check:luhn}", "UTC", None)
    book = AuditBook(Router((NumberSequence("CU", template, 1, "none"),)))
    s_number, m_number = (template.bind(AT, "INDIVIDUAL", "").render(v) for v in (1, 2))
    assert book.observe(assigned("crm/S", s_number, 1), 0) == []
    assert book.observe(assigned("web/M", m_number, 2), 0) == []
    merged = assigned("web/M", s_number, 1, merged_into="crm/S", retired_number=m_number)
    assert book.observe(merged, 0) == []  # not a second number, not a shared one
    assert book.observe(assigned("web/M", m_number, 2), 0) == []  # unmerged: its own again
    wrong = assigned("pos/P", s_number, 1, merged_into="crm/S", retired_number=m_number)
    kinds = [f.kind for f in book.observe(wrong, 0)]
    assert kinds == ["number_shared"]  # a retired number claimed by another person
    assert [f.kind for f in book.observe(assigned("pos/Q", s_number, 1), 0)] == ["number_shared"]


def test_a_repeat_writes_every_record_again_a_chain_included() -> None:
    """The retry of a batch whose merge step Redis kept (its commit failed) takes the repeat
    path: it must still write the records of the customers merged into the merged one."""
    store = FakeStore({"s/S": own(1), "m/M": own(2), "x/X": own(3)})
    run(store, req(MERGE, "x/X", "m/M"))
    request = req(MERGE, "m/M", "s/S")
    run(store, request)
    again = run(store, request)
    assert [(c.customer_key, c.assignment.number) for c in again.changes] == [
        ("m/M", "N-1"),
        ("x/X", "N-1"),
    ]
    assert again.refused == []


def test_merge_records_claim_what_no_committed_claim_holds() -> None:
    store = FakeStore({"s/S": own(1), "m/M": own(2)})
    outcome = run(store, req(MERGE, "m/M", "s/S"))
    committed = {("CU", 1)}
    claims = merge_claims(outcome.changes, lambda c, v: (c, v) in committed)
    assert claims == {"CU": {2}}  # M's own value: its batch may never have committed
    assert merge_claims(outcome.changes, lambda c, v: True) == {}
