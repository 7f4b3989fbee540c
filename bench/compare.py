"""Before and after, change by change: the service at several commits on the same
pre-produced input, in turns, in the same run (durability on: appendfsync always in all).

    .venv/bin/python bench/compare.py                       # issue 21's kept changes
    .venv/bin/python bench/compare.py --revisions A,B,C     # any commits, oldest first
    .venv/bin/python bench/compare.py --smoke               # tiny sizes

For each commit: numbers/s over the input (first to last batch), then latency at 1,000
events/s. Each turn runs the commits in a rotated order, so a machine that speeds up or slows
down during the run favours none. Prints a table and writes bench/results/compare.json.
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
from serialization import baseline_tree

from consumer.bootstrap import topic_specs
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings

# The commit before issue 21, then each change kept for it that touches the service.
ISSUE_21 = "99623c8,b42599b,7d45e5b,210b220,7560997,27a23bd,b69c552"


def subject(revision: str) -> str:
    return subprocess.check_output(
        ["git", "log", "-1", "--format=%s", revision], cwd=ROOT, text=True
    ).strip()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--revisions", default=ISSUE_21, help="commits, oldest first")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--latency-seconds", type=float, default=20, help="at 1,000 events/s")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it works")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.turns, args.latency_seconds = 3000, 1, 3
    revisions = [r.strip() for r in args.revisions.split(",") if r.strip()]
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    trees = {rev: baseline_tree(rev) for rev in revisions}
    topic = f"bench-{uuid.uuid4().hex[:8]}.created"
    ensure_topics(bootstrap, {topic: topic_specs(Settings())["customer.created"]})
    produce_input(bootstrap, topic, args.events)
    set_redis_fsync(redis_url, "always")
    batch = Settings.from_env().batch_size
    a2 = statistics.median(
        ceiling_passthrough(bootstrap, topic, args.events, batch, transcode=True)
        for _ in range(args.turns)
    )
    runs: dict[str, list[dict[str, Any]]] = {rev: [] for rev in revisions}
    latency: dict[str, list[dict[str, Any]]] = {rev: [] for rev in revisions}
    for turn in range(args.turns):
        shift = turn % len(revisions)
        for rev in revisions[shift:] + revisions[:shift]:
            runs[rev].append(
                run_service(bootstrap, redis_url, topic, args.events, trees[rev], rebuild=False)
            )
            latency[rev].append(
                measure_latency(bootstrap, redis_url, 1000, args.latency_seconds, trees[rev])
            )
    rows = []
    for rev in revisions:
        rate = statistics.median(r["numbers_per_s_working"] for r in runs[rev])
        rows.append(
            {
                "revision": rev,
                "change": subject(rev),
                "numbers_per_s": rate,
                "of_a2": rate / a2,
                "p50_ms": statistics.median(r["p50_ms"] for r in latency[rev]),
                "p99_ms": statistics.median(r["p99_ms"] for r in latency[rev]),
            }
        )
    first = rows[0]["numbers_per_s"]
    print(f"\nceiling A2 (transcoding pass-through, same run): {a2:,.0f} events/s")
    print(f"{'commit':9}{'numbers/s':>11}{'vs first':>9}{'of A2':>7}{'p50':>8}{'p99':>8}  change")
    for row in rows:
        print(
            f"{row['revision']:9}{row['numbers_per_s']:>11,.0f}"
            f"{row['numbers_per_s'] / first:>9.2f}{row['of_a2']:>7.2f}"
            f"{row['p50_ms']:>6.1f}ms{row['p99_ms']:>6.1f}ms  {row['change'][:70]}"
        )
    out = ROOT / "bench" / "results" / "compare.json"
    results = {
        "events": args.events,
        "turns": args.turns,
        "ceiling_a2_transcode_per_s": a2,
        "rows": rows,
        "runs": runs,
        "latency": latency,
    }
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
