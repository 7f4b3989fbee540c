"""The auditor's cost: how fast it reads a large output topic, and its memory per customer.

    .venv/bin/python bench/audit.py             # 1,000,000 customers
    .venv/bin/python bench/audit.py --smoke     # 20,000, seconds

Fills a fresh output topic with N committed assignments (as the service writes them), then in
the same run:
  baseline: reading the whole topic and doing nothing with it (the read ceiling);
  the auditor: `customer-ids audit --until-caught-up` as a subprocess, records/s from its start
    to its audit_caught_up line, and its peak resident memory;
  the book alone: AuditBook fed N assignments in this process, its memory measured with
    tracemalloc (what the auditor keeps per customer, without the Kafka client's buffers).
Prints a table and writes bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Message, Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from customer_ids.adapters.kafka_io import ensure_topics  # noqa: E402
from customer_ids.adapters.log_reader import read_to_end  # noqa: E402
from customer_ids.config.settings import Settings  # noqa: E402
from customer_ids.domain.audit import AuditBook  # noqa: E402
from customer_ids.domain.events import CustomerIdAssigned  # noqa: E402
from customer_ids.domain.numbers import RenderContext  # noqa: E402
from customer_ids.wire.codec import customer_id_assigned_codec  # noqa: E402

MOMENT = datetime(2026, 1, 1, tzinfo=UTC)
AUDIT = [sys.executable, "-m", "customer_ids.cli", "audit", "--until-caught-up"]
AUDIT += ["--metrics-port", "0", "--gap-grace", "0"]


def assignments(count: int) -> list[CustomerIdAssigned]:
    template = Settings().router.sequences[0].template
    return [
        CustomerIdAssigned(
            event_id=str(uuid.UUID(int=i)),
            causation_id=str(uuid.UUID(int=i + 1)),
            customer_id=f"C{i:012d}",
            source_system="crm",
            customer_number=template.render(RenderContext(i + 1, MOMENT, "BUSINESS", "DE")),
            sequence_name="CU",
            sequence=i + 1,
            assigned_at=MOMENT,
        )
        for i in range(count)
    ]


def fill(bootstrap: str, topic: str, records: list[CustomerIdAssigned]) -> None:
    codec = customer_id_assigned_codec()
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4"}
    )
    for record in records:
        while True:
            try:
                producer.produce(
                    topic,
                    key=record.customer_key.encode(),
                    value=codec.encode(record.to_record()),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(300) == 0


def read_baseline(bootstrap: str, topic: str) -> float:
    started = time.monotonic()
    count = 0

    def on_record(_: Message) -> None:
        nonlocal count
        count += 1

    read_to_end(bootstrap, topic, on_record, timeout=None)
    return count / (time.monotonic() - started)


def run_auditor(
    bootstrap: str, topic: str, count: int, watermark_topic: str | None = None
) -> dict[str, float]:
    """`watermark_topic`: where the service that wrote `topic` recorded its number formats."""
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        CUSTOMER_IDS_OUTPUT_TOPIC=topic,
        CUSTOMER_IDS_LOG_FORMAT="json",
    )
    if watermark_topic:
        env["CUSTOMER_IDS_WATERMARK_TOPIC"] = watermark_topic
    log = ROOT / "bench" / "results" / f"audit-{uuid.uuid4().hex[:8]}.log"
    with log.open("wb") as out:
        subprocess.run(
            [*AUDIT, "--group", f"bench-{topic}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    stamp = {
        line["event"]: datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
        for line in lines
    }
    seconds = (stamp["audit_caught_up"] - stamp["audit_started"]).total_seconds()
    caught_up = next(line for line in lines if line["event"] == "audit_caught_up")
    assert caught_up["customers"] == count, caught_up
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"records_per_s": count / seconds, "seconds": seconds, "peak_rss_mb": peak_kib / 1024}


def book_bytes_per_customer(records: list[CustomerIdAssigned]) -> float:
    book = AuditBook(Settings().router)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for record in records:
        book.observe(record, 0.0)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert book.customers == len(records)
    return (after - before) / len(records)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="20,000 customers")
    args = parser.parse_args()
    count = 20_000 if args.smoke else args.customers
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    topic = f"bench-audit-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: {"partitions": 6, "replication": 1}})
    records = assignments(count)
    fill(bootstrap, topic, records)
    baseline = read_baseline(bootstrap, topic)
    auditor = run_auditor(bootstrap, topic, count)
    per_customer = book_bytes_per_customer(records)
    rows = [
        ("baseline: read the topic, nothing else (records/s)", baseline),
        ("auditor: read, decode, check (records/s)", auditor["records_per_s"]),
        ("  ratio auditor / baseline", auditor["records_per_s"] / baseline),
        ("auditor peak resident memory (MB)", auditor["peak_rss_mb"]),
        ("audit book per customer (bytes, tracemalloc)", per_customer),
    ]
    print(f"\n{count:,} customers")
    for label, value in rows:
        print(f"  {label:52} {value:>12,.2f}")
    results = {
        "customers": count,
        "baseline_records_per_s": baseline,
        **{f"auditor_{k}": v for k, v in auditor.items()},
        "book_bytes_per_customer": per_customer,
    }
    out = ROOT / "bench" / "results" / "audit.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
