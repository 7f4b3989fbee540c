"""The `import` command as a person sees it: progress while it reads and writes, one line per
refused pair, the report file, and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from consumer.bootstrap import topic_specs
from consumer.claims import ClaimsLog
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import FencedError
from customer_ids.tools.importing import (
    Importer,
    ImportPlan,
    ImportRefusedError,
    check_file,
    summary,
)

EX_DATAERR = 65  # sysexits: the input data was incorrect
EX_TEMPFAIL = 75  # sysexits: try again later
SHOWN = 20  # refused lines printed; the report file has them all


def run_import(
    settings: Settings, path: Path, *, dry_run: bool, report: Path | None, chunk_rows: int
) -> int:
    console = Console(stderr=True)
    if not path.is_file():
        console.print(f"{path}: no such file; name a CSV or JSON-lines file of pairs")
        return 66  # EX_NOINPUT
    # As the service does at start: an import before its first start finds the topics made
    # with their settings (compacted output), not auto-created by a produce.
    ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    claims = ClaimsLog(settings.bootstrap_servers, settings.watermark_topic)
    with console.status("checking the file against what is committed") as status:

        def progress(stage: str, count: int) -> None:
            status.update(f"{stage}: {count:,}")

        plan = check_file(settings, path, claims, progress)
    _write_report(report, plan)
    stop = _checked(console, plan, report, dry_run)
    if stop is not None:
        claims.close()
        return stop
    return _write(console, settings, claims, plan, report, chunk_rows)


def _write(
    console: Console,
    settings: Settings,
    claims: ClaimsLog,
    plan: ImportPlan,
    report: Path | None,
    chunk_rows: int,
) -> int:
    importer = Importer(settings, claims)
    try:
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pairs committed"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("import", total=len(plan.rows))

            def wrote(_: str, count: int) -> None:
                bar.update(task, completed=count)

            result = importer.run(plan, wrote, chunk_rows)
    except ImportRefusedError as exc:
        console.print(f"import stopped: {exc}")
        console.print("what was committed before stays (each chunk is whole); run it again")
        return EX_DATAERR
    except FencedError:
        console.print(
            "import stopped: another import started and took over (one import runs at a "
            "time); what was committed stays: run this one again once that one is done"
        )
        return EX_TEMPFAIL
    finally:
        importer.close()
    if result.refusals:
        plan.refusals = result.refusals
        _write_report(report, plan)
        _show_refusals(console, plan, report)
        console.print(
            "the service's counter passed these numbers while the import started; nothing "
            "was written"
        )
        return EX_DATAERR
    highest = ", ".join(f"{c} above {v:,}" for c, v in sorted(plan.highest.items()))
    console.print(
        f"imported {result.written:,} pairs in {result.chunks} transaction(s) "
        f"(import {plan.import_id}); counters now {highest or 'unchanged'}"
    )
    return 0


def _checked(console: Console, plan: ImportPlan, report: Path | None, dry_run: bool) -> int | None:
    """What the check says; the exit status when the command ends here."""
    console.print(
        f"{plan.lines:,} lines; {len(plan.rows):,} pairs to import, {plan.already:,} already "
        f"committed, {plan.repeats:,} repeated lines, {len(plan.refusals):,} refused"
    )
    if plan.refusals:
        _show_refusals(console, plan, report)
        console.print("nothing was written: fix or remove these lines and run it again")
        return EX_DATAERR
    if dry_run:
        kinds = json.dumps(summary(plan)["by_counter"])
        console.print(f"dry run: every check passed, nothing written ({kinds})")
        return 0
    if plan.lines == 0:
        console.print("the file holds no pairs: nothing to import")
        return 0
    if not plan.rows:
        console.print("nothing to import: every pair of this file is already committed")
        return 0
    return None


def _show_refusals(console: Console, plan: ImportPlan, report: Path | None) -> None:
    for refusal in plan.refusals[:SHOWN]:
        console.print(f"  {refusal}", markup=False, highlight=False)
    if len(plan.refusals) > SHOWN:
        where = f"all in {report}" if report else "write them all with --report PATH"
        console.print(f"  ... and {len(plan.refusals) - SHOWN:,} more ({where})")


def _write_report(report: Path | None, plan: ImportPlan) -> None:
    if report is None:
        return
    lines = [json.dumps(summary(plan))]
    lines += [
        json.dumps({"line": r.line, "pair": r.pair, "reason": r.reason}) for r in plan.refusals
    ]
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
