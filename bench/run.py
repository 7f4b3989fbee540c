"""Throughput benchmark: the service end to end against same-run ceilings.

    .venv/bin/python bench/run.py            # full run (200,000 events, 3 runs)
    .venv/bin/python bench/run.py --smoke    # tiny sizes, seconds

Ceiling A: a transactional pass-through with the service's batching (consume, produce, send
offsets, commit; no Redis). Ceiling B: Redis alone (INCR one by one; the allocation calls the
service makes per batch). Then the service as a subprocess over the same pre-produced input,
Redis memory per customer, and the speed of rebuilding Redis from the output topic.
Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from consumer.assign import assign_numbers
from consumer.bootstrap import topic_specs
from consumer.recovery import rebuild_map
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.adapters.log_reader import read_to_end
from customer_ids.config.settings import Settings
from customer_ids.stack.kafka import kafka_version
from customer_ids.store.factory import number_store
from customer_ids.wire.codec import customer_created_codec
from producer.generator import generate_events

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import run_auditor
from latency import measure_latency, service_env
from plot import plot_batch_sizes, plot_latency

ROOT = Path(__file__).resolve().parents[1]


def produce_input(bootstrap: str, topic: str, count: int) -> None:
    codec = customer_created_codec()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "enable.idempotence": True,
            "compression.type": "lz4",
        }
    )
    for event in generate_events(count, seed=42):
        while True:
            try:
                producer.produce(
                    topic, key=event.customer_id.encode(), value=codec.encode(event.to_record())
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def ceiling_passthrough(
    bootstrap: str,
    topic: str,
    count: int,
    batch: int,
    transcode: bool = False,
    replication: int = 1,
) -> float:
    """Events/s of consume -> produce -> send_offsets -> commit with no Redis at all.

    With `transcode`, each record is also Avro-decoded and re-encoded, as the service must:
    the share of the gap that is the codec's, not allocation's."""
    codec = customer_created_codec()
    tag = uuid.uuid4().hex[:8]
    out = f"bench-{tag}.passthrough"
    ensure_topics(bootstrap, {out: {"partitions": 6, "replication": replication}})
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-pt-{tag}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"bench-pt-{tag}",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(30)
    consumer.subscribe([topic])
    done = 0
    started = None
    while done < count:
        messages = [m for m in consumer.consume(batch, 0.05) if m.error() is None]
        if not messages:
            continue
        started = started or time.monotonic()
        producer.begin_transaction()
        for m in messages:
            value = codec.encode(codec.decode(m.value())) if transcode else m.value()
            producer.produce(out, key=m.key(), value=value)
        last: dict[int, int] = {}
        for m in messages:
            last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
        producer.send_offsets_to_transaction(
            [TopicPartition(topic, p, o + 1) for p, o in last.items()],
            consumer.consumer_group_metadata(),
        )
        producer.commit_transaction()
        done += len(messages)
    consumer.close()
    assert started is not None
    return count / (time.monotonic() - started)


def ceiling_redis(redis_url: str, ops: int, batch: int) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    started = time.monotonic()
    for _ in range(ops):
        client.incr(f"{prefix}incr")
    incr_rate = ops / (time.monotonic() - started)
    allocator = number_store(client, prefix)
    allocator.mark_valid_for_tests("bench")
    router = Settings().router
    events = list(generate_events(ops * 5, seed=7))
    started = time.monotonic()
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        assign_numbers([(e, router.route(e)) for e in chunk], allocator, "bench")
    alloc_rate = len(events) / (time.monotonic() - started)
    _delete_prefix(client, prefix)
    return {"incr_per_s": incr_rate, "allocate_numbers_per_s": alloc_rate}


def redis_memory_per_customer(redis_url: str, customers: int, batch: int) -> float:
    client = redis.Redis.from_url(redis_url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    allocator = number_store(client, prefix)
    allocator.mark_valid_for_tests("bench")
    router = Settings().router
    before = int(client.info("memory")["used_memory"])
    chunk = []
    for event in generate_events(customers, seed=9):
        chunk.append((event, router.route(event)))
        if len(chunk) == batch:
            assign_numbers(chunk, allocator, "bench")
            chunk = []
    if chunk:
        assign_numbers(chunk, allocator, "bench")
    after = int(client.info("memory")["used_memory"])
    _delete_prefix(client, prefix)
    return (after - before) / customers


def _stamp(text: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(f"{prefix}*", count=5000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])


def redis_fsync(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    return str(client.config_get("appendfsync").get("appendfsync", "everysec"))


def set_redis_fsync(redis_url: str, policy: str) -> None:
    """AOF on, fsync as given: `always` is what the service's durability needs."""
    client = redis.Redis.from_url(redis_url)
    client.config_set("appendonly", "yes")
    client.config_set("appendfsync", policy)


def run_service(
    bootstrap: str,
    redis_url: str,
    topic: str,
    count: int,
    source: Path = ROOT,
    rebuild: bool = True,
    **extra: str,
) -> dict[str, Any]:
    """The service from the tree at `source` (this checkout, or an older commit's worktree)
    over the pre-produced input `topic`; with `rebuild`, also a rebuild of Redis from its
    output."""
    tag = uuid.uuid4().hex[:8]
    # The pre-produced input is shared by every run; everything else is this run's own.
    env = service_env(bootstrap, redis_url, tag, CUSTOMER_IDS_INPUT_TOPIC=topic, **extra)
    log = open(ROOT / "bench" / "results" / f"service-{tag}.log", "wb")  # noqa: SIM115
    spawned = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "customer_ids.cli", "serve"],
        env={**env, "PYTHONPATH": str(source)},
        cwd=source,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            done = committed_total(bootstrap, f"bench-{tag}", topic, 6)
            if done >= count:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"service exited {proc.returncode}; see {log.name}")
            time.sleep(0.1)
        finished = time.monotonic()
    finally:
        proc.terminate()
        proc.wait(60)
    batches = [
        json.loads(line)
        for line in Path(log.name).read_text().splitlines()
        if '"batch_committed"' in line
    ]
    stamps = [_stamp(b["timestamp"]) for b in batches]
    # From the start of the first batch to the commit of the last: the service at work.
    working_s = max(stamps) - min(stamps) + batches[0]["ms"] / 1000
    result = {
        "total_s": finished - spawned,
        "working_s": working_s,
        "batches": len(batches),
        "batch_ms_p50": statistics.median(b["ms"] for b in batches),
        "numbers_per_s": count / (finished - spawned),
        "numbers_per_s_working": count / working_s,
    }
    if not rebuild:
        _delete_prefix(redis.Redis.from_url(redis_url), f"bench-{tag}:")
        return result
    settings = Settings.from_env(env)
    # The baseline of the two readers below: the same output topic read, nothing done.
    read_s, read = timed_read(bootstrap, settings.output_topic)
    assert read == count, (read, count)
    # The whole rebuild as recovery does it: read the log, write the map into Redis.
    client = redis.Redis.from_url(redis_url)
    scratch = number_store(client, f"bench-rebuild-{tag}:")
    started = time.monotonic()
    state = rebuild_map(settings, scratch)
    rebuild_s = time.monotonic() - started
    assert state.restored == count, (state.restored, count)
    _delete_prefix(client, f"bench-rebuild-{tag}:")
    _delete_prefix(client, f"bench-{tag}:")
    auditor = run_auditor(bootstrap, settings.output_topic, count, settings.watermark_topic)
    return {
        **result,
        "plain_read_records_per_s": count / read_s,
        "rebuild_records_per_s": count / rebuild_s,
        "rebuild_share_of_read": read_s / rebuild_s,
        "auditor_records_per_s": auditor["records_per_s"],
        "auditor_share_of_read": auditor["records_per_s"] * read_s / count,
        "auditor_peak_rss_mb": auditor["peak_rss_mb"],
    }


def timed_read(bootstrap: str, topic: str) -> tuple[float, int]:
    """Seconds to read `topic` to its end doing nothing with the records, and how many."""
    started = time.monotonic()
    count = read_to_end(bootstrap, topic, lambda _: None, timeout=None)
    return time.monotonic() - started, count


def throughput_by_batch_size(
    bootstrap: str, redis_url: str, topic: str, count: int, sizes: list[int]
) -> list[dict[str, float]]:
    """The service over the same input at each batch size (the other half of the trade-off
    that the latency plot shows)."""
    points = []
    for size in sizes:
        run = run_service(
            bootstrap, redis_url, topic, count, rebuild=False, CUSTOMER_IDS_BATCH_SIZE=str(size)
        )
        points.append({"batch_size": size, "numbers_per_s": run["numbers_per_s_working"]})
    return points


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it works")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--customers",
        type=int,
        default=1_000_000,
        help="customers for the Redis memory measurement",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=60,
        help="how long each latency rate is offered (0: skip)",
    )
    parser.add_argument(
        "--rates", default="500,1000,2000,5000", help="offered rates for latency (and its plot)"
    )
    parser.add_argument(
        "--batch-sizes",
        default="250,1000,2500,5000",
        help="batch sizes for the throughput plot (empty: skip)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.events, args.runs, args.customers = 2000, 1, 5000
        args.latency_seconds, args.rates, args.batch_sizes = 2, "500", ""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()  # CUSTOMER_IDS_BATCH_SIZE, _WORKERS... apply to every part
    batch = settings.batch_size
    topic = f"bench-{uuid.uuid4().hex[:8]}.created"
    ensure_topics(bootstrap, {topic: topic_specs(Settings())["customer.created"]})
    produce_input(bootstrap, topic, args.events)

    results: dict[str, Any] = {
        "events": args.events,
        "runs": args.runs,
        "batch_size": batch,
        "workers": settings.workers,
    }
    passthrough = [
        ceiling_passthrough(bootstrap, topic, args.events, batch) for _ in range(args.runs)
    ]
    results["ceiling_a_passthrough_per_s"] = statistics.median(passthrough)
    results["ceiling_a2_transcode_per_s"] = statistics.median(
        ceiling_passthrough(bootstrap, topic, args.events, batch, transcode=True)
        for _ in range(args.runs)
    )
    results["ceiling_b_redis"] = ceiling_redis(redis_url, max(2000, args.events // 20), batch)
    # What durability costs (DESIGN §5.1): each run of the service with Redis fsyncing every
    # write (appendfsync always, the shipped setting) has a twin with everysec, the baseline,
    # run in turn so both see the same machine.
    service_runs, everysec_runs = [], []
    original = redis_fsync(redis_url)
    try:
        for _ in range(args.runs):
            set_redis_fsync(redis_url, "everysec")
            everysec_runs.append(
                run_service(bootstrap, redis_url, topic, args.events, rebuild=False)
            )
            set_redis_fsync(redis_url, "always")
            service_runs.append(run_service(bootstrap, redis_url, topic, args.events))
    finally:
        set_redis_fsync(redis_url, original)
    results["service_runs"] = service_runs
    results["service_runs_everysec"] = everysec_runs
    fsync_always = statistics.median(r["numbers_per_s_working"] for r in service_runs)
    fsync_everysec = statistics.median(r["numbers_per_s_working"] for r in everysec_runs)
    results["durability"] = {
        "everysec_numbers_per_s": fsync_everysec,
        "always_numbers_per_s": fsync_always,
        "cost_ratio": 1 - fsync_always / fsync_everysec,
    }
    service = statistics.median(r["numbers_per_s"] for r in service_runs)
    steady = statistics.median(r["numbers_per_s_working"] for r in service_runs)
    results["service_numbers_per_s"] = service
    results["service_numbers_per_s_after_startup"] = steady
    results["ratio_to_ceiling_a"] = steady / results["ceiling_a_passthrough_per_s"]
    results["ratio_to_ceiling_a2"] = steady / results["ceiling_a2_transcode_per_s"]
    for key in (
        "plain_read_records_per_s",
        "rebuild_records_per_s",
        "rebuild_share_of_read",
        "auditor_records_per_s",
        "auditor_share_of_read",
        "auditor_peak_rss_mb",
    ):
        results[key] = statistics.median(r[key] for r in service_runs)
    results["redis_bytes_per_customer"] = redis_memory_per_customer(
        redis_url, args.customers, batch
    )
    # Latency at 1,000/s, at half of the saturation just measured, and at the other rates.
    half = int(steady / 2 // 100 * 100)
    rates = sorted({1000, half, *(int(r) for r in args.rates.split(","))})
    latency = []
    if args.latency_seconds:
        for rate in rates:
            latency.append(measure_latency(bootstrap, redis_url, rate, args.latency_seconds))
    results["latency"] = latency
    results["half_saturation_rate"] = half
    sizes = [int(size) for size in args.batch_sizes.split(",") if size]
    results["throughput_by_batch_size"] = throughput_by_batch_size(
        bootstrap, redis_url, topic, args.events, sizes
    )
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kafka": kafka_version(),
        "redis": redis.Redis.from_url(redis_url).info()["redis_version"],
    }
    print(
        f"\n{args.events:,} events, median of {args.runs} run(s), batch {batch}, "
        f"{settings.workers} worker(s), Redis appendfsync always"
    )
    print_measures(results)
    print_goals(results)
    out = ROOT / "bench" / "results" / "latest.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    title = f"customer-ids latency, {settings.workers} worker(s), batch {batch}"
    for plotted in (
        plot_latency(latency, out.with_name("latency.png"), title),
        plot_batch_sizes(results["throughput_by_batch_size"], out.with_name("batch-size.png")),
    ):
        if plotted:
            print(f"wrote {plotted}")
    return 0


def print_measures(results: dict[str, Any]) -> None:
    rows = [
        (
            "ceiling A: transactional pass-through (events/s)",
            results["ceiling_a_passthrough_per_s"],
        ),
        ("ceiling A2: A + Avro decode/encode (events/s)", results["ceiling_a2_transcode_per_s"]),
        ("Redis INCR one by one (ops/s)", results["ceiling_b_redis"]["incr_per_s"]),
        ("allocation step alone (numbers/s)", results["ceiling_b_redis"]["allocate_numbers_per_s"]),
        ("service incl. start-up (numbers/s)", results["service_numbers_per_s"]),
        (
            "service, first to last batch (numbers/s)",
            results["service_numbers_per_s_after_startup"],
        ),
        (
            "  same, Redis appendfsync everysec (numbers/s)",
            results["durability"]["everysec_numbers_per_s"],
        ),
        ("plain read of the output topic (records/s)", results["plain_read_records_per_s"]),
        ("rebuild of Redis from it (records/s)", results["rebuild_records_per_s"]),
        ("auditor over it (records/s)", results["auditor_records_per_s"]),
        ("auditor peak resident memory (MB)", results["auditor_peak_rss_mb"]),
        ("Redis bytes per customer", results["redis_bytes_per_customer"]),
    ]
    for item in results["latency"]:
        rows.append((f"latency p50 at {item['rate']:,}/s (ms)", item["p50_ms"]))
        rows.append((f"latency p99 at {item['rate']:,}/s (ms)", item["p99_ms"]))
    for point in results["throughput_by_batch_size"]:
        rows.append(
            (f"service at batch {point['batch_size']:,} (numbers/s)", point["numbers_per_s"])
        )
    for name, value in rows:
        print(f"  {name:52} {value:>14,.1f}")


def goals(results: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    """Each of issue 21's goals: what was measured, the target, whether it is met."""
    latency = {item["rate"]: item for item in results["latency"]}
    rows = [
        (
            "service / ceiling A2 (same run)",
            results["ratio_to_ceiling_a2"],
            ">= 0.60",
            results["ratio_to_ceiling_a2"] >= 0.6,
        ),
        (
            "rebuild / plain read",
            results["rebuild_share_of_read"],
            ">= 0.60",
            results["rebuild_share_of_read"] >= 0.6,
        ),
        (
            "auditor / plain read",
            results["auditor_share_of_read"],
            ">= 0.50",
            results["auditor_share_of_read"] >= 0.5,
        ),
        (
            "Redis bytes per customer",
            results["redis_bytes_per_customer"],
            "<= 50",
            results["redis_bytes_per_customer"] <= 50,
        ),
    ]
    if 1000 in latency:
        p99 = latency[1000]["p99_ms"]
        rows.append(("latency p99 at 1,000/s (ms)", p99, "<= 50", p99 <= 50))
    half = results["half_saturation_rate"]
    if half in latency:
        p99 = latency[half]["p99_ms"]
        rows.append((f"latency p99 at half saturation, {half:,}/s (ms)", p99, "<= 100", p99 <= 100))
    return rows


def print_goals(results: dict[str, Any]) -> None:
    results["goals"] = [
        {"goal": name, "measured": value, "target": target, "met": met}
        for name, value, target, met in goals(results)
    ]
    print("\n  issue 21's goals                                      measured   target   met")
    for name, value, target, met in goals(results):
        print(f"  {name:50} {value:>10,.2f}   {target:>6}   {'yes' if met else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
