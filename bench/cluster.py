"""The cost of replication: the service on one broker and on a three-node Kafka cluster
(replication factor 3, min.insync.replicas 2: every commit waits for a second replica), in the
same run, over the same number of pre-produced events.

    .venv/bin/python bench/cluster.py            # 100,000 events
    .venv/bin/python bench/cluster.py --smoke    # 5,000, to check it works

The single broker is the running stack's (KAFKA_BOOTSTRAP_SERVERS); the cluster is started here
on free ports and stopped at the end. Baselines, per Kafka: a transactional pass-through with the
service's batching (no Redis). Prints a table and writes bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import ceiling_passthrough, produce_input, run_service  # noqa: E402

from customer_ids.adapters.kafka_io import ensure_topics  # noqa: E402
from customer_ids.stack.kafka_cluster import KafkaCluster  # noqa: E402
from customer_ids.stack.local import default_cache_dir  # noqa: E402
from tests.helpers.own_redis import free_port  # noqa: E402


def measure(name: str, bootstrap: str, replicas: int, redis_url: str, count: int) -> dict[str, Any]:
    topic = f"bench-{uuid.uuid4().hex[:8]}.created"
    min_isr = "2" if replicas >= 3 else "1"
    spec = {"partitions": 6, "replication": replicas, "config": {"min.insync.replicas": min_isr}}
    ensure_topics(bootstrap, {topic: spec})
    produce_input(bootstrap, topic, count)
    passthrough = ceiling_passthrough(bootstrap, topic, count, 2500, replication=replicas)
    service = run_service(
        bootstrap, redis_url, topic, count, CUSTOMER_IDS_REPLICATION_FACTOR=str(replicas)
    )
    working = service["numbers_per_s_working"]
    print(f"  {name}: pass-through {passthrough:,.0f}/s, service {working:,.0f}/s")
    return {"name": name, "replicas": replicas, "passthrough_per_s": passthrough, **service}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="5,000 events")
    args = parser.parse_args()
    count = 5_000 if args.smoke else args.events
    single = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as state:
        ports = [(free_port(), free_port()) for _ in range(3)]
        cluster = KafkaCluster.on_ports(Path(state), default_cache_dir(), ports)
        started = time.monotonic()
        cluster.start()
        try:
            cluster.wait_ready(300)
            print(f"cluster of 3 ready in {time.monotonic() - started:.0f}s; {count:,} events")
            runs = [
                measure("single broker, replication 1", single, 1, redis_url, count),
                measure(
                    "3 brokers, replication 3, min ISR 2", cluster.bootstrap, 3, redis_url, count
                ),
            ]
        finally:
            cluster.stop()
    base, rf3 = runs
    rows = [
        ("pass-through, 1 broker (events/s)", base["passthrough_per_s"]),
        ("pass-through, 3 brokers RF3 (events/s)", rf3["passthrough_per_s"]),
        ("  ratio RF3 / single", rf3["passthrough_per_s"] / base["passthrough_per_s"]),
        ("service while working, 1 broker (numbers/s)", base["numbers_per_s_working"]),
        ("service while working, 3 brokers RF3 (numbers/s)", rf3["numbers_per_s_working"]),
        ("  ratio RF3 / single", rf3["numbers_per_s_working"] / base["numbers_per_s_working"]),
        ("rebuild from output topic, 1 broker (records/s)", base["rebuild_records_per_s"]),
        ("rebuild from output topic, 3 brokers (records/s)", rf3["rebuild_records_per_s"]),
    ]
    print(f"\n{count:,} events, same run")
    for label, value in rows:
        print(f"  {label:52} {value:>12,.2f}")
    out = ROOT / "bench" / "results" / "cluster.json"
    out.write_text(json.dumps({"events": count, "runs": runs}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
