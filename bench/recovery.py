"""What a Redis failure costs: recovery time against the size of the output topic.

    .venv/bin/python bench/recovery.py             # 1,000,000 customers
    .venv/bin/python bench/recovery.py --smoke     # 20,000, seconds

Fills a fresh output topic with N committed assignments (as the service writes them), then
measures, in the same run:
  baseline: reading the whole topic and doing nothing with it (the read ceiling);
  a wiped Redis: a full rebuild (read everything, restore every customer);
  a failover or restart onto older data: the same state plus `--tail` records committed
  after its checkpoint, recovered from the checkpoint (what DESIGN §5 asks to cost seconds).
Prints a table and writes bench/results/recovery.json. Peak memory is the process's maximum
resident size, to show that the rebuild streams.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumer.bootstrap import topic_specs  # noqa: E402
from consumer.metrics import ServiceMetrics  # noqa: E402
from consumer.recovery import StateRecovery  # noqa: E402
from customer_ids.adapters.kafka_io import ensure_topics  # noqa: E402
from customer_ids.adapters.log_reader import read_to_end  # noqa: E402
from customer_ids.config.settings import Settings  # noqa: E402
from customer_ids.domain.events import CustomerIdAssigned, now_utc  # noqa: E402
from customer_ids.store.factory import number_store  # noqa: E402
from customer_ids.store.ports import StoredAssignment  # noqa: E402
from customer_ids.wire.codec import customer_id_assigned_codec  # noqa: E402
from customer_ids.wire.headers import ASSIGNMENT_HEADER  # noqa: E402


def fill_elsewhere(env: dict[str, str], first: int, count: int) -> None:
    """fill() in a child process, so this one's peak memory is the recovery's alone."""
    child = multiprocessing.get_context("spawn").Process(
        target=_fill_from_env, args=(env, first, count)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"filling the output topic failed (exit {child.exitcode})")


def _fill_from_env(env: dict[str, str], first: int, count: int) -> None:
    fill(Settings.from_env(env), first, count)


def fill(settings: Settings, first: int, count: int) -> None:
    """Committed outputs for customers bench/C<n>, n = first .. first+count-1."""
    codec = customer_id_assigned_codec()
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "transactional.id": f"bench-fill-{uuid.uuid4().hex[:8]}",
            "linger.ms": 50,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(30)
    at = now_utc()
    for start in range(first, first + count, 50_000):
        producer.begin_transaction()
        for n in range(start, min(start + 50_000, first + count)):
            stored = StoredAssignment("CU", n, f"CU-{n:08d}-0")
            event = CustomerIdAssigned(
                str(uuid.UUID(int=n)),
                str(uuid.UUID(int=n)),
                f"C{n}",
                "bench",
                stored.number,
                "CU",
                n,
                at,
            )
            while True:
                try:
                    producer.produce(
                        settings.output_topic,
                        key=f"bench/C{n}".encode(),
                        value=codec.encode(event.to_record()),
                        headers=[(ASSIGNMENT_HEADER, stored.encode().encode())],
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.commit_transaction(60)


def timed(call: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=10_000, help="records after the checkpoint")
    parser.add_argument("--smoke", action="store_true", help="20,000 customers, 2,000 tail")
    args = parser.parse_args()
    if args.smoke:
        args.customers, args.tail = 20_000, 2_000
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "CUSTOMER_IDS_OUTPUT_TOPIC": f"bench-{tag}.assigned",
        "CUSTOMER_IDS_WATERMARK_TOPIC": f"bench-{tag}.watermarks",
        "CUSTOMER_IDS_SEARCH_TOPIC": f"bench-{tag}.search",
        "CUSTOMER_IDS_ERASURE_TOPIC": f"bench-{tag}.erasures",
        "CUSTOMER_IDS_INPUT_TOPIC": f"bench-{tag}.created",
        "CUSTOMER_IDS_DLQ_TOPIC": f"bench-{tag}.dlq",
        "CUSTOMER_IDS_REDIS_PREFIX": f"bench-recovery-{tag}:",
    }
    settings = Settings.from_env(env)
    ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    fill_s, _ = timed(lambda: fill_elsewhere(env, 1, args.customers))
    read_s, read = timed(
        lambda: read_to_end(settings.bootstrap_servers, settings.output_topic, lambda m: None, None)
    )
    client = redis.Redis.from_url(settings.redis_url)
    store = number_store(client, settings.redis_prefix)
    recovery = StateRecovery(store, settings, ServiceMetrics())
    peak_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    full_s, valid = timed(lambda: recovery.ensure(None))
    assert store.counters(["CU"]) == {"CU": args.customers}
    fill_elsewhere(env, args.customers + 1, args.tail)
    client.set(store.keys.identity, "an-older-server/0")  # as after a failover or restart
    tail_s, _ = timed(lambda: recovery.ensure(valid.epoch))
    assert store.counters(["CU"]) == {"CU": args.customers + args.tail}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memory = int(client.info("memory")["used_memory"])
    keys = list(client.scan_iter(f"{settings.redis_prefix}*", count=5000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    results = {
        "customers": args.customers,
        "tail": args.tail,
        "fill_seconds": fill_s,
        "baseline_read_records_per_s": read / read_s,
        "full_rebuild_seconds": full_s,
        "full_rebuild_records_per_s": args.customers / full_s,
        "full_rebuild_share_of_read_ceiling": (args.customers / full_s) / (read / read_s),
        "recovery_from_checkpoint_seconds": tail_s,
        "checkpoint_recovery_vs_full": tail_s / full_s,
        "peak_rss_mb": peak_mb,
        "peak_rss_before_recovery_mb": peak_before_mb,
        "redis_used_memory_bytes": memory,
    }
    rows = [
        ("baseline: read the topic, no work (records/s)", results["baseline_read_records_per_s"]),
        (f"full rebuild of {args.customers:,} customers (s)", full_s),
        ("full rebuild (records/s)", results["full_rebuild_records_per_s"]),
        ("full rebuild / read baseline", results["full_rebuild_share_of_read_ceiling"]),
        (f"recovery from checkpoint, {args.tail:,} records behind (s)", tail_s),
        ("recovery from checkpoint / full rebuild", results["checkpoint_recovery_vs_full"]),
        ("peak memory before the recoveries (MB): the baseline read", peak_before_mb),
        ("peak memory after them (MB)", peak_mb),
    ]
    print(f"\nrecovery bench, {args.customers:,} customers")
    for name, value in rows:
        print(f"  {name:58} {value:>14,.3f}")
    out = ROOT / "bench" / "results" / "recovery.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
