"""`customer-ids import` (issue 23): pairs imported per second against the service's own
numbers per second on as many new customers, measured in the same run on the same stack, and
the import's peak memory at two file sizes (what it keeps per row is the difference over the
rows). Prints a table, writes bench/results/import.json.

    .venv/bin/python bench/import.py                  # 1,000,000 pairs
    .venv/bin/python bench/import.py --smoke          # 4,000 pairs, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import ROOT, service_env
from run import produce_input, run_service

from consumer.bootstrap import topic_specs
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings
from customer_ids.domain.events import now_utc
from customer_ids.domain.numbers import NumberTemplate, RenderContext

RESULTS = ROOT / "bench" / "results"
TEMPLATE = NumberTemplate.parse("CU-{seq:8}-{check:luhn}")  # the default sequence's


def write_file(path: Path, pairs: int, legacy_share: float = 0.1) -> Path:
    """`pairs` lines: template numbers 1.. in file order, every tenth a legacy number."""
    moment = now_utc()
    every = round(1 / legacy_share) if legacy_share else 0
    with path.open("w", encoding="utf-8") as out:
        out.write("source_system,customer_id,customer_number\n")
        for i in range(1, pairs + 1):
            if every and i % every == 0:
                number = f"LEG/{i:09d}"
            else:
                number = TEMPLATE.render(RenderContext(i, moment, "INDIVIDUAL", "DE"))
            out.write(f"old-crm,C{i},{number}\n")
    return path


def run_import(bootstrap: str, redis_url: str, path: Path) -> dict[str, Any]:
    """The command on topics of its own; wall time and the peak RSS of the process."""
    tag = uuid.uuid4().hex[:8]
    env = service_env(bootstrap, redis_url, tag)
    ensure_topics(bootstrap, topic_specs(Settings.from_env(env)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", "import", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"import exited {done.returncode}: {done.stderr[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:
        raise RuntimeError("the import's peak memory could not be told from earlier children")
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "summary": done.stderr[-300:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="4,000 pairs, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.pairs = 4000
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")
    RESULTS.mkdir(parents=True, exist_ok=True)
    console = Console()
    scratch = RESULTS / "import-files"
    scratch.mkdir(exist_ok=True)
    small, large = max(args.pairs // 4, 1000), args.pairs
    # The smaller file first: ru_maxrss of the children only grows, so each is the peak of
    # the largest import so far (the later, larger one).
    console.print(f"import of {small:,} pairs (memory at a quarter of the size)")
    quarter = run_import(bootstrap, redis_url, write_file(scratch / "quarter.csv", small))
    console.print(f"import of {large:,} pairs")
    full = run_import(bootstrap, redis_url, write_file(scratch / "full.csv", large))
    console.print(f"baseline: the service numbering {large:,} new customers")
    topic = f"bench-import-input-{uuid.uuid4().hex[:8]}"
    produce_input(bootstrap, topic, large)
    service = run_service(bootstrap, redis_url, topic, large, rebuild=False)
    per_row = (full["peak_rss_mb"] - quarter["peak_rss_mb"]) * 1024 * 1024 / (large - small)
    result = {
        "pairs": large,
        "import_s": full["seconds"],
        "import_pairs_per_s": large / full["seconds"],
        "service_numbers_per_s": service["numbers_per_s"],
        "import_vs_service": (large / full["seconds"]) / service["numbers_per_s"],
        "peak_rss_mb": {str(small): quarter["peak_rss_mb"], str(large): full["peak_rss_mb"]},
        "bytes_per_row": per_row,
    }
    table = Table(title=f"customer-ids import, {large:,} pairs (10% legacy numbers)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("import, pairs/s", f"{result['import_pairs_per_s']:,.0f}")
    table.add_row("service (baseline, same run), numbers/s", f"{service['numbers_per_s']:,.0f}")
    table.add_row("import / service", f"{result['import_vs_service']:.2f}")
    table.add_row(f"peak RSS at {small:,} pairs, MB", f"{quarter['peak_rss_mb']:,.0f}")
    table.add_row(f"peak RSS at {large:,} pairs, MB", f"{full['peak_rss_mb']:,.0f}")
    table.add_row("memory per row (the difference), bytes", f"{per_row:,.0f}")
    console.print(table)
    out = RESULTS / "import.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    for name in ("quarter.csv", "full.csv"):
        (scratch / name).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
