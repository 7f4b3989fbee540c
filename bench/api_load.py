"""Lookup latency of `customer-ids api` on loopback, at a steady offered rate:

    .venv/bin/python bench/api_load.py              # 200 lookups/s for 30 s per kind
    .venv/bin/python bench/api_load.py --smoke      # 3 s per kind, for CI

It fills Redis (a prefix of its own) with customers and the reverse index, starts the API as
a real process (tokens, JSON request lines at info, as shipped), then offers requests open
loop: request k is due at start + k/rate, and its latency counts from when it was due, so a
slow answer delays the ones behind it in the numbers too (no coordinated omission). In the same
run it measures two baselines: one Redis HGET from this process (the store's floor) and
GET /healthz (the HTTP stack with no lookup). Prints a table and writes bench/results/api.json.
Every loop is bounded by --seconds; only 127.0.0.1 is contacted (Redis, and Kafka for the
watermark that says the numbers are committed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from confluent_kafka import Producer

from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.adapters.redis_keys import RedisKeys, customer_field
from customer_ids.domain.api_tokens import new_token, token_line
from customer_ids.domain.numbers import NumberTemplate, RenderContext
from customer_ids.store.factory import number_store

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = NumberTemplate.parse("CU-{seq:8}-{check:luhn}")
THREADS = 16  # mostly asleep; enough that one slow answer does not hold up the schedule


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def number(value: int) -> str:
    return TEMPLATE.render(RenderContext(value, datetime.now(UTC), "INDIVIDUAL", "DE"))


def fill(client: redis.Redis, prefix: str, customers: int) -> None:
    store = number_store(client, prefix, reverse_index=True)
    store.mark_valid_for_tests(str(uuid.uuid4()))
    for first in range(1, customers + 1, 5000):
        chunk = range(first, min(first + 5000, customers + 1))
        store.restore({f"bench/C{i}": f"CU|{i}|{number(i)}" for i in chunk})


def commit_watermark(bootstrap: str, topic: str, highest: int) -> None:
    """The watermark a service that committed values 1..highest of CU leaves."""
    ensure_topics(bootstrap, {topic: {"partitions": 1, "replication": -1}})
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=b"CU@bench", value=str(highest).encode())
    if producer.flush(30):
        raise RuntimeError(f"{topic} did not take the watermark")


def drop(client: redis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


def redis_baseline(client: redis.Redis, prefix: str, customers: int, count: int) -> list[float]:
    """One HGET of a customer's bucket at a time: what a lookup costs Redis and the wire."""
    keys = RedisKeys(prefix)
    out = []
    for _ in range(count):
        field = customer_field(f"bench/C{random.randint(1, customers)}")
        started = time.perf_counter()
        client.hget(keys.assignments(field), field)
        out.append((time.perf_counter() - started) * 1000)
    return out


def offer(url_of: Callable[[], str], token: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop load: THREADS clients share one schedule of rate*seconds requests."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []
    guard = threading.Lock()
    start = time.perf_counter() + 0.2

    def work(offset: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=headers, timeout=10) as client:
            for k in range(offset, total, THREADS):
                due = start + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                try:
                    status = client.get(url_of()).status_code
                except httpx.HTTPError as exc:
                    status, detail = 0, type(exc).__name__
                else:
                    detail = str(status)
                took = (time.perf_counter() - due) * 1000
                with guard:
                    latencies.append(took)
                    if status != 200:
                        errors.append(detail)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "achieved_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


def start_api(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "customer_ids.tools.api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the API did not get ready; see {log_path}")


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="lookups per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="per kind of request")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="3 s per kind, 2,000 customers")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.customers = 3.0, 2000
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench-api-{tag}:"
    token = new_token()
    port = free_port()
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    log_path = results_dir / f"api-{tag}.log"
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        CUSTOMER_IDS_REDIS_PREFIX=prefix,
        CUSTOMER_IDS_REVERSE_INDEX="on",
        CUSTOMER_IDS_LOG_FORMAT="json",
        CUSTOMER_IDS_API_TOKENS=token_line("bench", ["numbers:read"], token),
    )
    # The API answers only committed numbers (the claims log): say they all are, as the
    # service's watermark would.
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    env["CUSTOMER_IDS_WATERMARK_TOPIC"] = f"bench-api-{tag}.wm"
    commit_watermark(bootstrap, env["CUSTOMER_IDS_WATERMARK_TOPIC"], args.customers)
    client = redis.Redis.from_url(redis_url)
    fill(client, prefix, args.customers)
    base = f"http://127.0.0.1:{port}"
    proc = start_api(env, port, log_path)
    try:

        def pick() -> int:
            return random.randint(1, args.customers)

        offer(lambda: f"{base}/v1/customers/bench/C{pick()}", token, args.rate, 1.0)  # warm up
        hget = redis_baseline(client, prefix, args.customers, 2000)
        phases = {
            "healthz (HTTP baseline)": offer(
                lambda: f"{base}/healthz", token, args.rate, args.seconds
            ),
            "customer -> number": offer(
                lambda: f"{base}/v1/customers/bench/C{pick()}", token, args.rate, args.seconds
            ),
            "number -> customer": offer(
                lambda: f"{base}/v1/numbers/{number(pick())}", token, args.rate, args.seconds
            ),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        drop(client, prefix)
    results = {
        "rate_per_s": args.rate,
        "seconds_per_kind": args.seconds,
        "customers": args.customers,
        "client_threads": THREADS,
        "redis_hget_baseline": {
            "p50_ms": round(percentile(hget, 50), 3),
            "p99_ms": round(percentile(hget, 99), 3),
        },
        "phases": phases,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "log": str(log_path.relative_to(ROOT)),
    }
    print(
        f"API lookups on loopback: {args.rate:.0f}/s offered for {args.seconds:.0f} s per kind, "
        f"{args.customers} customers, reverse index on"
    )
    print(
        f"{'measure':28} {'sent':>6} {'err':>4} {'got/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}"
    )
    b = results["redis_hget_baseline"]
    print(
        f"{'Redis HGET (store floor)':28} {2000:>6} {0:>4} {'-':>7} {b['p50_ms']:>8} {'-':>8} "
        f"{b['p99_ms']:>8} {'-':>8}"
    )
    for name, r in phases.items():
        print(
            f"{name:28} {r['requests']:>6} {r['errors']:>4} {r['achieved_per_s']:>7} "
            f"{r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    out = results_dir / "api.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written: {out.relative_to(ROOT)}")
    failed = sum(r["errors"] for r in phases.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
