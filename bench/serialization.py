"""What the uniqueness serialization costs (issue 20): the service as it is against the service
at an earlier commit (by default the last one before the claim check and the ledger), on the
same pre-produced input, in turns, in the same run, durability on (appendfsync always) in both.

    .venv/bin/python bench/serialization.py                 # 100,000 events, 3 turns each
    .venv/bin/python bench/serialization.py --smoke         # tiny sizes
    .venv/bin/python bench/serialization.py --baseline REV  # another commit as the baseline

Also the transactional pass-through with Avro transcoding (ceiling A2), the project's usual
baseline. Prints a table and writes bench/results/serialization.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import measure_latency
from run import ROOT, ceiling_passthrough, produce_input, run_service, set_redis_fsync

from consumer.bootstrap import topic_specs
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings
from customer_ids.stack.local import default_cache_dir

BEFORE_ISSUE_20 = "7ed3ce2"


def baseline_tree(revision: str) -> Path:
    """A worktree of `revision` in the cache folder (made once, kept for the next run)."""
    sha = subprocess.check_output(["git", "rev-parse", revision], cwd=ROOT, text=True).strip()
    tree = default_cache_dir() / "bench-trees" / sha[:10]
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it works")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--baseline", default=BEFORE_ISSUE_20, help="commit to compare with")
    parser.add_argument("--latency-seconds", type=float, default=30, help="at 1,000 events/s")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.turns, args.latency_seconds = 3000, 1, 3
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    before = baseline_tree(args.baseline)
    topic = f"bench-{uuid.uuid4().hex[:8]}.created"
    ensure_topics(bootstrap, {topic: topic_specs(Settings())["customer.created"]})
    produce_input(bootstrap, topic, args.events)
    batch = Settings.from_env().batch_size
    set_redis_fsync(redis_url, "always")
    a2 = [
        ceiling_passthrough(bootstrap, topic, args.events, batch, transcode=True)
        for _ in range(args.turns)
    ]
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
    for turn in range(args.turns):
        # Alternate which goes first, so a machine that speeds up or slows down favours neither.
        order = [("before", before), ("now", ROOT)]
        for name, source in order if turn % 2 == 0 else order[::-1]:
            runs[name].append(
                run_service(bootstrap, redis_url, topic, args.events, source, rebuild=False)
            )
    latency: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
    for turn in range(args.turns):
        order = [("before", before), ("now", ROOT)]
        for name, source in order if turn % 2 == 0 else order[::-1]:
            latency[name].append(
                measure_latency(bootstrap, redis_url, 1000, args.latency_seconds, source)
            )
    rate = {n: statistics.median(r["numbers_per_s_working"] for r in rs) for n, rs in runs.items()}
    p99 = {n: statistics.median(r["p99_ms"] for r in rs) for n, rs in latency.items()}
    p50 = {n: statistics.median(r["p50_ms"] for r in rs) for n, rs in latency.items()}
    batch_ms = {n: statistics.median(r["batch_ms_p50"] for r in rs) for n, rs in runs.items()}
    ceiling = statistics.median(a2)
    results = {
        "events": args.events,
        "turns": args.turns,
        "baseline_commit": args.baseline,
        "ceiling_a2_transcode_per_s": ceiling,
        "runs": runs,
        "numbers_per_s": rate,
        "batch_ms_p50": batch_ms,
        "latency_runs_at_1000_per_s": latency,
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "cost_ratio": 1 - rate["now"] / rate["before"],
    }
    head = f"{'numbers/s':>12}{'of A2':>8}{'batch p50':>11}{'p50 @1k/s':>11}{'p99 @1k/s':>11}"
    print(f"\n{'':34}{head}")
    print(f"{'ceiling A2 (transcode pass-through)':34}{ceiling:>12,.0f}{1:>8.2f}")
    for name, label in (("before", f"service at {args.baseline}"), ("now", "service now")):
        print(
            f"{label:34}{rate[name]:>12,.0f}{rate[name] / ceiling:>8.2f}"
            f"{batch_ms[name]:>9.1f}ms{p50[name]:>9.1f}ms{p99[name]:>9.1f}ms"
        )
    print(f"serialization and ledger cost: {results['cost_ratio']:.1%} of throughput")
    out = ROOT / "bench" / "results" / "serialization.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
