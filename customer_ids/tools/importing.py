"""`customer-ids import FILE`: a legacy CRM's numbers adopted as committed assignments.

Three phases. The *check* reads the file, the claims log and the output topic (the record of
truth) and refuses, with every bad line named, anything that would give one customer two
numbers or one number two customers; nothing is written unless the whole file passes. The
*reserve* raises each counter above the highest imported value of its sequence in one
transaction (its `import/<id>` record is a floor for every recovery, so the raise outlives
Redis) and keeps where each stood: below it the service may have handed numbers out, so no
imported number below it is accepted. The *chunks* then take the state as a recovery does
(Importer): outputs and claims in one Kafka transaction of the import's own transactional id
(a second import fences the first), Redis told only after the commit.

An import is resumable, not all-or-nothing: every chunk is committed whole or not at all, and
the import id is the file's digest, so a re-run of the same file skips what is committed and
writes the rest. A legacy number (no template produces it) is valued by its digest on its own
counter (domain/imports.py), and its shape is recorded so no template may ever produce it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import redis
from confluent_kafka import KafkaException, Message

from consumer.bootstrap import transactional_session
from consumer.claims import (
    IMPORT_PREFIX,
    LEGACY_PREFIX,
    ClaimsBehindError,
    ClaimsLog,
    Ranges,
    claim_record_key,
    claim_value,
    ranges_of,
    refuse_taken,
)
from consumer.kafka_txn import RetryBatchError, kafka_errors
from consumer.metrics import ServiceMetrics
from consumer.outputs import OUTPUT_EVENT_NAMESPACE, output_event_id, watermark_key
from consumer.recovery import StateRecovery, checkpoint_field
from customer_ids.adapters import failpoints
from customer_ids.adapters.log_reader import read_topics_to_end
from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.schema_registry import framed_codec
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError, CustomerIdsError, FencedError
from customer_ids.domain.events import now_utc
from customer_ids.domain.imports import (
    CHUNK_ROWS,
    LEGACY_COUNTER,
    FileCheck,
    ImportRow,
    Refusal,
    legacy_value,
    place,
    read_rows,
)
from customer_ids.domain.number_spaces import may_produce, shape_of
from customer_ids.domain.numbers import NumberTemplate
from customer_ids.store.factory import build_allocator
from customer_ids.store.import_state import ImportState
from customer_ids.store.leases import LeaseLostError, LockTimeoutError
from customer_ids.store.ports import (
    GENERATION,
    AllocationConflictError,
    StateBehindLogError,
    StateChangedError,
    StoredAssignment,
)
from customer_ids.wire.headers import ASSIGNMENT_HEADER, IMPORTED_HEADER

log = get_logger(__name__)
# Between chunks: instances waiting on the recovery lock (polled every 0.1 s) get the state.
CHUNK_PAUSE_S = 0.15
ATTEMPTS = 5
IMPORT_LINGER_MS = 20  # chunks of thousands of records: fewer, fuller requests


PASSING = (
    StateChangedError,
    RetryBatchError,
    ClaimsBehindError,
    AllocationConflictError,
    LockTimeoutError,
    LeaseLostError,
    redis.RedisError,
)


class ImportRefusedError(CustomerIdsError):
    """The file (or part of it) cannot be imported; the report names each line."""


@dataclass
class ImportPlan:
    """What the check found: the rows still to write, and everything it refused."""

    import_id: str
    lines: int = 0
    rows: list[ImportRow] = field(default_factory=list)  # placed, to write
    already: int = 0  # pairs already committed (an earlier run of this import, or the same)
    repeats: int = 0  # lines repeating an earlier line's pair
    refusals: list[Refusal] = field(default_factory=list)
    highest: dict[str, int] = field(default_factory=dict)  # counter -> highest imported
    shapes: set[str] = field(default_factory=set)  # legacy shapes to record
    below: dict[str, int] = field(default_factory=dict)  # counter -> its value at the start


@dataclass
class ImportResult:
    written: int = 0
    chunks: int = 0
    refusals: list[Refusal] = field(default_factory=list)


def import_id_of(path: Path) -> str:
    """The same file is the same import: its id is a UUIDv5 of the file's SHA-256."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return str(uuid.uuid5(OUTPUT_EVENT_NAMESPACE, "import:" + digest.hexdigest()))


def import_transactional_id(settings: Settings) -> str:
    """One per consumer group: two imports at once fence each other, never interleave."""
    return f"{settings.group_id}-import"


# ------------------------------------------------------------------------------------ check
def check_file(
    settings: Settings, path: Path, claims: ClaimsLog, progress: Callable[[str, int], None]
) -> ImportPlan:
    """Every line checked against the file, the configured and recorded templates and what
    is committed; the plan holds the rows left to write."""
    plan = ImportPlan(import_id_of(path))
    file_check = FileCheck(plan.refusals)
    _read_file(path, settings, plan, file_check, progress)
    _read_claims(claims, settings)
    history = _history_templates(claims)
    committed = _committed_against(settings, file_check, progress)
    accepted, file_check.rows = file_check.rows, []  # the check is done with them
    for row in accepted:
        refusal = _refusal(row, committed, history)
        if refusal == "already":
            plan.already += 1
        elif refusal is not None:
            plan.refusals.append(refusal)
        else:
            plan.rows.append(row)
            if row.legacy:
                plan.shapes.add(shape_of(row.number))
            else:
                plan.highest[row.counter] = max(plan.highest.get(row.counter, 0), row.value)
    del accepted, file_check
    previous = claims.imports.get(plan.import_id)
    if previous is not None:  # a run of this import committed its reserve already
        plan.below = dict(previous["below"])
        # Its record must keep saying the whole range (compaction keeps the last one).
        for counter, highest in previous["highest"].items():
            if counter in plan.highest or plan.rows:
                plan.highest[counter] = max(plan.highest.get(counter, 0), highest)
    plan.refusals += below_live_counters(plan, _live(settings, claims, plan.highest), claims)
    plan.refusals.sort(key=lambda r: r.line)
    return plan


def _read_file(
    path: Path,
    settings: Settings,
    plan: ImportPlan,
    file_check: FileCheck,
    progress: Callable[[str, int], None],
) -> None:
    """The lines that are well formed, placed, and agree with the rest of the file, into
    `file_check.rows`."""
    # utf-8-sig: a spreadsheet's export starts with a byte order mark.
    with path.open(encoding="utf-8-sig", newline="") as stream:
        for item in read_rows(stream, path.name):
            plan.lines += 1
            if plan.lines % 50_000 == 0:
                progress("reading the file", plan.lines)
            placed = item if isinstance(item, Refusal) else place(item, settings.router)
            if isinstance(placed, Refusal):
                plan.refusals.append(placed)
            elif isinstance(item, ImportRow):
                file_check.add(item.at(placed))
    plan.repeats = file_check.repeats


def _refusal(
    row: ImportRow, committed: _Committed, history: list[NumberTemplate]
) -> Refusal | Literal["already"] | None:
    """Why a row cannot be imported over what is committed; "already" when it is."""
    pair = f"{row.customer_key} {row.number}"
    has, owner = committed.numbers.get(row.customer_key), committed.owners.get(row.number)
    if has == row.number:
        return "already"
    if has is not None:
        return Refusal(row.line, pair, f"two numbers for one customer: it already has {has}")
    if owner is not None:
        return Refusal(row.line, pair, f"the number is already issued to {owner}")
    if row.legacy and (met := _met_by(shape_of(row.number), history)):
        return Refusal(
            row.line,
            pair,
            f"a template used before ({met!r}) could produce this number; it cannot be kept "
            "as a legacy number",
        )
    return None


def below_live_counters(plan: ImportPlan, live: dict[str, int], claims: ClaimsLog) -> list[Refusal]:
    """Rows whose value the counter had already passed when the import began (`plan.below`,
    else `live` now): the service may have given that number to someone whose commit is still
    on its way. A value in a range an earlier import raised a counter over is free unless
    committed (the service never numbers there). Those rows leave the plan."""
    earlier = [
        (counter, record["below"].get(counter, 0), highest)
        for import_id, record in claims.imports.items()
        if import_id != plan.import_id
        for counter, highest in record["highest"].items()
    ]
    refused, kept = [], []
    for row in plan.rows:
        start = plan.below.get(row.counter, live.get(row.counter, 0))
        skipped = any(c == row.counter and low < row.value <= high for c, low, high in earlier)
        if not row.legacy and row.value <= start and not skipped:
            refused.append(
                Refusal(
                    row.line,
                    f"{row.customer_key} {row.number}",
                    f"value {row.value} is not above counter {row.counter}'s {start} "
                    "(where it stood when the import began): the service may have given this "
                    "number to a customer already; import numbers above the live counter, or "
                    "before the service numbers anyone",
                )
            )
        else:
            kept.append(row)
    plan.rows = kept
    return refused


@dataclass
class _Committed:
    numbers: dict[str, str] = field(default_factory=dict)  # customer in the file -> number
    owners: dict[str, str] = field(default_factory=dict)  # number in the file -> customer


def _committed_against(
    settings: Settings, file_check: FileCheck, progress: Callable[[str, int], None]
) -> _Committed:
    """What the output topic says about the file's customers and numbers (the latest record
    of each customer counts, as compaction keeps it)."""
    found = _Committed()
    read = 0

    def on_output(message: Message) -> None:
        nonlocal read
        read += 1
        if read % 200_000 == 0:
            progress("reading the output topic", read)
        headers: list[tuple[str, bytes]] = message.headers() or []  # type: ignore[assignment]
        stored = next((v for k, v in headers if k == ASSIGNMENT_HEADER), None)
        if stored is None or message.value() is None:
            return
        customer = (message.key() or b"").decode()
        # A merged customer's own number is its retired one; the survivor's is an alias.
        number = StoredAssignment.decode(stored.decode()).own_assignment.number
        if file_check.customer(customer) is not None:
            found.numbers[customer] = number
        if file_check.holder(number) is not None:
            found.owners[number] = customer

    read_topics_to_end(settings.bootstrap_servers, {settings.output_topic: on_output}, timeout=None)
    return found


def _read_claims(claims: ClaimsLog, settings: Settings) -> None:
    wait_s = float(settings.kafka_call_timeout_s) * 4
    claims.read_until(claims.end_offset(wait_s), wait_s)


def _history_templates(claims: ClaimsLog) -> list[NumberTemplate]:
    found = []
    for rendering in claims.renderings:
        try:
            found.append(NumberTemplate.parse(rendering.template, "UTC", b"any scramble key"))
        except ConfigError:
            continue
    return found


def _met_by(shape: str, templates: list[NumberTemplate]) -> str | None:
    return next((t.text for t in templates if may_produce(t, shape)), None)


def _live(settings: Settings, claims: ClaimsLog, counters: dict[str, int]) -> dict[str, int]:
    """Each counter as far as anyone got: Redis now, or the log when Redis is behind it."""
    store = build_allocator(settings)
    now = store.counters(sorted(counters)) if counters else {}
    return {c: max(v, claims.floors.get(c, 0)) for c, v in now.items()}


# ------------------------------------------------------------------------------------ write
class _CommittedNotRestoredError(CustomerIdsError):
    """A chunk whose commit was called: committed (or not known), Redis not told. The state
    stays marked; a recovery puts Redis where the log is."""

    def __init__(self, committed: bool, cause: BaseException) -> None:
        super().__init__(f"chunk {'committed' if committed else 'commit unknown'}: {cause}")
        self.committed = committed


class Importer:
    """Writes a checked plan: the reserve, then chunk by chunk, each its own transaction.

    A chunk takes the state the way a recovery does (the recovery lock, then the state marked
    `rebuilding`), so no instance allocates or commits while it is written; Redis learns its
    pairs only after its Kafka transaction committed. Redis therefore never holds an imported
    pair that is not committed: nothing a killed import leaves behind can be handed out, and a
    re-issued imported number is always a committed one. A chunk killed after its commit
    leaves the state marked, and the next recovery restores the chunk from the output topic."""

    def __init__(self, settings: Settings, claims: ClaimsLog) -> None:
        self.settings = settings
        self.claims = claims
        self.txid = import_transactional_id(settings)
        self.store = build_allocator(settings)
        self.state = ImportState(self.store)
        self.recovery = StateRecovery(self.store, settings, ServiceMetrics())
        self.codec = framed_codec(
            settings.registry(), settings.output_topic, "CustomerIdAssigned", register=True
        )
        self.transaction = transactional_session(settings, self.txid, IMPORT_LINGER_MS)
        self.epoch = ""

    def run(
        self, plan: ImportPlan, progress: Callable[[str, int], None], chunk_rows: int = CHUNK_ROWS
    ) -> ImportResult:
        result = ImportResult()
        with kafka_errors():
            self.transaction.init()  # aborts what a killed run of this import left open
        self.epoch = self.recovery.ensure(None).epoch
        self._attempts(lambda: self._reserve(plan, result))
        if result.refusals:
            return result  # nothing written: the report says why
        for chunk in _chunks(plan.rows, chunk_rows):
            result.written += self._chunk(plan, chunk)
            result.chunks += 1
            progress("importing", result.written)
        return result

    def _attempts(self, step: Callable[[], None]) -> None:
        """A step in its transaction; aborted and tried again on a passing failure, after a
        recovery when Redis is not the state it started from."""
        for attempt in range(ATTEMPTS):
            try:
                with kafka_errors():
                    step()
                return
            except ImportRefusedError:
                self.transaction.abort()
                raise
            except PASSING as exc:
                log.warning("import_step_aborted", reason=type(exc).__name__, error=str(exc)[:300])
                self.transaction.abort()
                if attempt == ATTEMPTS - 1:
                    raise
                if isinstance(exc, StateChangedError):
                    force = str(exc) if isinstance(exc, StateBehindLogError) else None
                    self.epoch = self.recovery.ensure(self.epoch, force).epoch
                time.sleep(0.2 * 2**attempt)

    # ---------------------------------------------------------------- the reserve
    def _reserve(self, plan: ImportPlan, result: ImportResult) -> None:
        """Counters raised above the highest imported values, where each stood before kept,
        and the legacy shapes and the import recorded, in one transaction."""
        self.transaction.begin()
        counters = sorted(plan.highest)
        generation = None
        if counters:
            with self.store.locked(counters):
                now = self.store.counters(counters)
                # Refused before anything is raised: rows the counter has passed already.
                below = plan.below or self._kept_below(plan.import_id, now)
                result.refusals = below_live_counters(replace(plan, below=below), {}, self.claims)
                if result.refusals:
                    self.transaction.abort()
                    return
                generation, plan.below = self.state.raise_counters(
                    self.epoch, plan.import_id, plan.highest
                )
        # The shapes first: a configuration recorded before them is read below; one recorded
        # after them reads them (consumer/renderings.py).
        for shape in sorted(plan.shapes):
            key = LEGACY_PREFIX + hashlib.sha256(shape.encode()).hexdigest()[:24].encode()
            self._produce_watermark(key, shape, claim=True)
        record = {"below": plan.below, "highest": plan.highest}
        key = IMPORT_PREFIX + plan.import_id.encode()
        self._produce_watermark(key, json.dumps(record), claim=True)
        claims: dict[str, Ranges] = {}
        if generation is not None:
            claims[GENERATION] = [(generation, generation)]
        self._claim(claims)
        self.transaction.flush()
        self.store.fence(self.epoch, {})
        self._read_to_own_claim()
        refuse_taken(claims, self.claims.committed)  # the generation: Redis gone back
        recorded = _history_templates(self.claims)
        problems = [
            f"{shape!r} ({met})"
            for shape in sorted(plan.shapes)
            if (met := _met_by(shape, recorded))
        ]
        if problems:
            raise ImportRefusedError(
                "templates recorded meanwhile could produce these legacy shapes: "
                + "; ".join(problems[:5])
            )
        self.transaction.commit_records()
        self.claims.own_committed(claims)

    def _kept_below(self, import_id: str, now: dict[str, int]) -> dict[str, int]:
        """Where an earlier attempt of this import found each counter when it raised it (kept
        with the raise, ImportState), else where it stands now."""
        kept = self.store.client.hmget(self.store.keys.import_below(import_id), list(now))
        return {c: int(v) if v is not None else now[c] for c, v in zip(now, kept, strict=True)}

    # ---------------------------------------------------------------- the chunks
    def _chunk(self, plan: ImportPlan, chunk: list[ImportRow]) -> int:
        """One chunk, tried again on a passing failure (after a recovery when the state is not
        valid); the pairs it holds committed at the end."""
        for attempt in range(ATTEMPTS):
            try:
                with kafka_errors():
                    self._write(plan, chunk)
                return len(chunk)
            except _CommittedNotRestoredError as exc:
                # Committed, or not known: a recovery reads the log (read_committed) and puts
                # Redis where the log is; the next attempt finds what committed.
                log.warning("import_chunk_left_to_recovery", error=str(exc)[:300])
                if not exc.committed:
                    with contextlib.suppress(KafkaException, FencedError):
                        self.transaction.abort()  # a commit that failed leaves it to abort
                self._recover()
                if exc.committed:
                    return len(chunk)
            except ImportRefusedError:
                raise
            except PASSING as exc:
                log.warning("import_step_aborted", reason=type(exc).__name__, error=str(exc)[:300])
                if attempt == ATTEMPTS - 1:
                    raise
                if isinstance(exc, StateChangedError):
                    self._recover()
            time.sleep(0.2 * 2**attempt)
        raise RetryBatchError(f"an import chunk failed {ATTEMPTS} times; run the import again")

    def _recover(self) -> None:
        """Until a recovery made the state valid again (Redis may be down for a while)."""
        for attempt in range(60):
            try:
                self.epoch = self.recovery.ensure(None).epoch
                return
            except PASSING:
                time.sleep(min(5.0, 0.2 * 2**attempt))
        self.epoch = self.recovery.ensure(None).epoch

    def _write(self, plan: ImportPlan, chunk: list[ImportRow]) -> None:
        # As long as a running recovery takes: the chunk needs the state it leaves.
        with self.store.leases.hold([self.store.keys.recovery_lock], wait_s=None) as lease:
            status = self.store.status()
            if not status.valid or status.epoch is None:
                raise StateChangedError("Redis is not a state the service validated")
            self.epoch = status.epoch
            todo = self._todo(chunk, self.store.lookup([row.customer_key for row in chunk]))
            if not todo:
                return  # all committed by an earlier attempt: the state is left alone
            token = uuid.uuid4().hex
            self.state.begin(self.epoch, token)  # nobody allocates or commits until the end
            try:
                # Looked up again under the marker: an instance may have allocated since.
                todo = self._todo(chunk, self.store.lookup(list(todo)), only=todo)
                claims = self._flush_chunk(plan, todo) if todo else {}
                self.state.fence(token)  # still ours, on the same server: nobody recovered
                lease.check()
            except BaseException:
                self._give_back(token)
                raise
            if not todo:
                self._give_back(token)
                return
            try:
                self.transaction.commit_records()
            except BaseException as exc:
                raise _CommittedNotRestoredError(committed=False, cause=exc) from exc
            self.claims.own_committed(claims)
            try:
                self.state.adopt(token, todo)
                delivered = self.transaction.delivered
                checkpoint = {checkpoint_field(t, p): o for (t, p), o in delivered.items()}
                self.epoch = uuid.uuid4().hex
                self.store.complete_rebuild(token, self.epoch, checkpoint)
            except Exception as exc:
                raise _CommittedNotRestoredError(committed=True, cause=exc) from exc
        # Between chunks, instances waiting for the state take it up before the next marker.
        time.sleep(CHUNK_PAUSE_S)

    def _todo(
        self,
        chunk: list[ImportRow],
        existing: dict[str, StoredAssignment],
        only: Mapping[str, object] | None = None,
    ) -> dict[str, StoredAssignment]:
        """The chunk's pairs Redis does not hold yet. One it holds with this number committed
        already (Redis learns imported pairs only after their commit); one it holds with
        another number was given one by the service after the check."""
        todo: dict[str, StoredAssignment] = {}
        for row in chunk:
            if only is not None and row.customer_key not in only:
                continue
            held = existing.get(row.customer_key)
            if held is not None and held.number != row.number:
                raise ImportRefusedError(
                    f"line {row.line}: {row.customer_key} was given {held.number} by the "
                    "service after the check; remove the line and run the import again"
                )
            if held is not None:
                continue
            value = legacy_value(row.number) if row.legacy else row.value
            todo[row.customer_key] = StoredAssignment(row.counter, value, row.number)
        return todo

    def _give_back(self, token: str) -> None:
        """Nothing was committed: the state as it was, under a new epoch. If even that fails,
        the state stays marked and a recovery validates it."""
        try:
            self.transaction.abort()
        finally:
            try:
                self.epoch = uuid.uuid4().hex
                self.store.complete_rebuild(token, self.epoch, {})
            except (redis.RedisError, StateChangedError) as exc:
                log.warning("import_state_left_to_recovery", error=str(exc)[:300])

    def _flush_chunk(
        self, plan: ImportPlan, todo: dict[str, StoredAssignment]
    ) -> dict[str, Ranges]:
        """The chunk's outputs and its claim on the broker, in an open transaction, every
        claim before ours read and none of our values among them."""
        self.transaction.begin()
        assigned_at = now_utc()
        values: dict[str, set[int]] = {}
        for key, stored in todo.items():
            self._produce_output(plan.import_id, key, stored, assigned_at)
            values.setdefault(stored.counter, set()).add(stored.value)
        claims = {c: ranges_of(v) for c, v in values.items()}
        self._claim(claims)
        self.transaction.flush()
        self._read_to_own_claim()
        # By the claims themselves: the imported values lie below floors the service's later
        # commits set (and a legacy number's value is its digest).
        refuse_taken(claims, self.claims.committed, exact=True)
        failpoints.reached("import_before_commit")
        return claims

    # ---------------------------------------------------------------- records
    def _produce_watermark(self, key: bytes, value: str, claim: bool = False) -> None:
        self.transaction.produce(
            self.settings.watermark_topic, key=key, value=value.encode(), claim=claim
        )

    def _claim(self, claims: dict[str, Ranges]) -> None:
        """The claim record and one floor per counter claimed (none for legacy digests)."""
        if not claims:
            return
        self.transaction.produce(
            self.settings.watermark_topic,
            key=claim_record_key(self.txid),
            value=claim_value(claims),
            claim=True,
        )
        for counter, ranges in sorted(claims.items()):
            if counter != LEGACY_COUNTER:
                known = max(ranges[-1][1], self.claims.floors.get(counter, 0))
                self._produce_watermark(watermark_key(counter, self.txid), str(known))

    def _read_to_own_claim(self) -> None:
        """Every record committed before our first claimed record, read."""
        if self.transaction.claimed is None:
            why = "; ".join(str(e) for e in self.transaction.undelivered[:3])
            raise RetryBatchError(f"the import's claim record was not delivered ({why})")
        wait_s = min(
            self.settings.kafka_call_timeout_s, self.settings.transaction_timeout_ms / 2000
        )
        self.claims.read_until(self.transaction.claimed, wait_s)

    def _produce_output(
        self, import_id: str, customer: str, stored: StoredAssignment, assigned_at: object
    ) -> None:
        source, _, customer_id = customer.partition("/")
        record = {
            # The same pair of the same import: the same id, whatever the run.
            "event_id": output_event_id(f"import:{import_id}:{customer}"),
            "causation_id": import_id,
            "customer_id": customer_id,
            "source_system": source,
            "customer_number": stored.number,
            "sequence_name": stored.counter,
            "sequence": stored.value,
            "assigned_at": assigned_at,
        }
        self.transaction.produce(
            self.settings.output_topic,
            key=customer.encode(),
            value=self.codec.encode(record),
            headers=[
                ("causation_id", import_id.encode()),
                (IMPORTED_HEADER, import_id.encode()),
                (ASSIGNMENT_HEADER, stored.encode().encode()),
            ],
            track=True,
        )

    def close(self) -> None:
        self.transaction.producer.flush(5)
        self.claims.close()


def _chunks(rows: list[ImportRow], size: int) -> Iterator[list[ImportRow]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def summary(plan: ImportPlan) -> dict[str, object]:
    kinds = Counter("legacy" if row.legacy else row.counter for row in plan.rows)
    return {
        "import_id": plan.import_id,
        "lines": plan.lines,
        "to_write": len(plan.rows),
        "already_committed": plan.already,
        "repeated_lines": plan.repeats,
        "refused": len(plan.refusals),
        "by_counter": dict(kinds),
        "highest": plan.highest,
    }
