"""Latency: from an event's produce() to its assignment being visible to a read_committed
consumer, at a steady offered rate. Used by bench/run.py; runnable alone:

    .venv/bin/python bench/latency.py --rate 1000 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from consumer.bootstrap import topic_specs
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings
from customer_ids.wire.codec import customer_id_assigned_codec
from producer.emitter import CustomerEventProducer
from producer.generator import generate_events

ROOT = Path(__file__).resolve().parents[1]


def service_env(bootstrap: str, redis_url: str, tag: str, **extra: str) -> dict[str, str]:
    """The service's environment with topics, group and key prefix of this run's own."""
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        REDIS_URL=redis_url,
        CUSTOMER_IDS_INPUT_TOPIC=f"bench-{tag}.created",
        CUSTOMER_IDS_OUTPUT_TOPIC=f"bench-{tag}.assigned",
        CUSTOMER_IDS_DLQ_TOPIC=f"bench-{tag}.dlq",
        CUSTOMER_IDS_WATERMARK_TOPIC=f"bench-{tag}.wm",
        CUSTOMER_IDS_SEARCH_TOPIC=f"bench-{tag}.search",
        CUSTOMER_IDS_ERASURE_TOPIC=f"bench-{tag}.erasures",
        CUSTOMER_IDS_GROUP_ID=f"bench-{tag}",
        CUSTOMER_IDS_REDIS_PREFIX=f"bench-{tag}:",
        CUSTOMER_IDS_TRANSACTIONAL_ID=f"bench-{tag}",
        CUSTOMER_IDS_METRICS_PORT="0",
        CUSTOMER_IDS_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _parts(name: str, values: list[float]) -> dict[str, float]:
    return {f"{name}_p{p}_ms": percentile(values, p) for p in (50, 99)} if values else {}


def _pace(started: float, i: int, rate: int) -> None:
    """Sleep until the i-th event of a steady `rate` is due."""
    delay = started + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def measure_latency(
    bootstrap: str,
    redis_url: str,
    rate: int,
    seconds: float,
    source: Path = ROOT,
    warm_up_s: float = 3.0,
    **service: str,
) -> dict[str, Any]:
    """`source`: the tree whose service runs (this checkout, or an older commit's worktree).
    The first `warm_up_s` of load is offered but not counted."""
    tag = uuid.uuid4().hex[:8]
    env = service_env(bootstrap, redis_url, tag, **service)
    settings = Settings.from_env(env)
    ensure_topics(bootstrap, topic_specs(settings))
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    log_path = ROOT / "bench" / "results" / f"latency-{tag}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "customer_ids.cli", "serve"],
            env={**env, "PYTHONPATH": str(source)},
            cwd=source,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stamped: dict[str, float] = {}  # assigned_at: when the service produced the output
    done = threading.Event()
    watching = threading.Event()
    codec = customer_id_assigned_codec()

    def watch() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-watch-{tag}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 5,
            }
        )
        consumer.subscribe(
            [settings.output_topic], on_assign=lambda c, parts: watching.set() if parts else None
        )
        while not done.is_set():
            # A short wait: consume() holds a batch until it is full or the wait ends, which
            # would add up to the wait to every latency measured.
            for message in consumer.consume(500, 0.002):
                if message.error() is None:
                    record = codec.decode(message.value())
                    seen.setdefault(record["causation_id"], time.time())
                    stamped.setdefault(record["causation_id"], record["assigned_at"].timestamp())
        consumer.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        deadline = time.monotonic() + 60
        while b"partitions_assigned" not in log_path.read_bytes():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"service did not start; see {log_path}")
            time.sleep(0.1)
        if not watching.wait(60):
            raise RuntimeError("the watching consumer got no partitions")
        time.sleep(1)
        count = int(rate * seconds)
        with CustomerEventProducer(bootstrap, settings.input_topic, **{"linger.ms": 1}) as out:
            # Warm-up at the same rate, not counted: the idempotent producer's start-up, the
            # service's first transactions (partitions added to them, metadata, first calls)
            # and the broker's new segments are not part of any event's steady-state latency.
            warming = time.monotonic()
            for i, event in enumerate(generate_events(max(1, int(rate * warm_up_s)), seed=999)):
                _pace(warming, i, rate)
                out.emit_event(event)
            out.flush()
            started = time.monotonic()
            for i, event in enumerate(generate_events(count, seed=5)):
                _pace(started, i, rate)
                sent[event.event_id] = time.time()
                out.emit_event(event)
        wait_until = time.monotonic() + 60
        while not sent.keys() <= seen.keys() and time.monotonic() < wait_until:
            time.sleep(0.1)
    finally:
        done.set()
        proc.terminate()
        proc.wait(60)
        watcher.join(10)
    latencies = [(seen[k] - t) * 1000 for k, t in sent.items() if k in seen]
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": len(sent),
        "seen": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        # Where the time goes: produce -> the service builds the output; then -> visible.
        **_parts(
            "to_processing", [(stamped[k] - t) * 1000 for k, t in sent.items() if k in stamped]
        ),
        **_parts(
            "to_visible",
            [(seen[k] - stamped[k]) * 1000 for k in sent if k in seen and k in stamped],
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    result = measure_latency(
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
        args.rate,
        args.seconds,
    )
    for key, value in result.items():
        print(f"{key:10} {value:,.2f}" if isinstance(value, float) else f"{key:10} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
