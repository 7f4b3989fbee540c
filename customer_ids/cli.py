"""The `customer-ids` command: stack, serve, produce, tail, watch, audit, validate, lookup, dlq,
forget, config."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.exit_codes import EXIT_CONFIG, EXIT_UNAVAILABLE
from customer_ids.adapters.logs import configure_logging
from customer_ids.config.settings import SETTINGS, Settings
from customer_ids.domain.errors import ConfigError, CustomerIdsError, UnavailableError
from customer_ids.domain.imports import CHUNK_ROWS

EXIT_REFUSED = 65  # EX_DATAERR: the request was read and refused, nothing changed
SECURE_ACTIONS = (
    "env",
    "add-subscriber",
    "rotate",
    "renew-certificate",
    "compose-files",
    "provision",
)

if TYPE_CHECKING:
    from customer_ids.stack.local import LocalStack

Needs = Callable[[argparse.Namespace, Settings], set[str]]


def _always(*dependencies: str) -> Needs:
    """Needs that do not depend on the command's arguments."""
    return lambda args, settings: set(dependencies)


def _lookup_needs(args: argparse.Namespace, settings: Settings) -> set[str]:
    _check_lookup_args(args)  # a wrong call is said before anything is asked of Kafka
    from_log = args.from_log or (not args.customer and not settings.reverse_index)
    # From Redis too, Kafka confirms that the number is committed.
    return {"kafka", "registry"} if from_log else {"redis", "kafka"}


def _check_lookup_args(args: argparse.Namespace) -> None:
    if not args.number and not args.customer:
        raise ConfigError("lookup needs --customer ID --source S, or --number N")
    if args.customer and not args.source:
        raise ConfigError("--customer needs --source: ids are unique per upstream system")


def _audit_needs(args: argparse.Namespace, settings: Settings) -> set[str]:
    # A standing auditor is a service: it waits for Kafka like `serve` does.
    return {"kafka", "registry"} if args.until_caught_up else set()


def _reach(settings: Settings, needs: set[str]) -> None:
    """Within CUSTOMER_IDS_CONNECT_TIMEOUT_S each, the dependencies this command needs answer,
    or UnavailableError says which did not, where, and what to do."""
    from customer_ids.adapters import reachability  # noqa: PLC0415

    bound = settings.connect_timeout_s
    if "kafka" in needs:
        reachability.require_kafka(settings.bootstrap_servers, bound)
    if "redis" in needs:
        reachability.require_redis(
            settings.redis_url, bound, settings.redis_sentinels, settings.redis_tls()
        )
    if "registry" in needs and settings.schema_registry_url:
        reachability.require_registry(settings.schema_registry_url, bound)


def _stack(args: argparse.Namespace) -> int:
    from customer_ids.stack.local import LocalStack  # noqa: PLC0415 - keep start-up light

    stack = LocalStack.default()
    if args.secure or args.action in SECURE_ACTIONS:
        return _secure_stack(args, stack)
    if args.name:
        raise ConfigError(f"`stack {args.action}` takes no name; only env, add-subscriber, rotate")
    if args.action == "up":
        seconds = stack.up(redis_ha=args.redis_ha, registry=args.registry, brokers=args.brokers)
        lines = stack.env_lines(
            redis_ha=args.redis_ha, registry=args.registry, brokers=args.brokers
        )
        print("\n".join(lines))
        print(
            f"# stack ready in {seconds:.1f}s (kafka pid {stack.kafka.running_pid()}, "
            f"redis pid {stack.redis.running_pid()})",
            file=sys.stderr,
        )
        return 0
    if args.action == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
        return 0
    return _stack_status(stack)


def _stack_status(stack: LocalStack) -> int:
    """One line per process of the stack; exit 1 when something it needs is down."""
    kafka, redis_pid = stack.kafka.running_pid(), stack.redis.running_pid()
    cluster = stack.cluster.running_pids()
    if any(cluster):
        kafka = cluster[0] if all(cluster) else None
        for node, pid in zip(stack.cluster.nodes, cluster, strict=True):
            state = f"up (pid {pid})" if pid else "down"
            print(f"kafka node {node.node_id}  {state} on {node.bootstrap}")
    else:
        print(f"kafka  {f'up (pid {kafka}) on {stack.kafka.bootstrap}' if kafka else 'down'}")
    print(f"redis  {f'up (pid {redis_pid}) on {stack.redis.url}' if redis_pid else 'down'}")
    ha_lines = stack.ha.status_lines()
    for line in ha_lines:
        print(line)
    registry_pid = stack.registry.running_pid()
    if registry_pid:
        print(f"schema registry  up (pid {registry_pid}) on {stack.registry.url}")
    secure_kafka, secure_redis = stack.secure.kafka.running_pid(), stack.secure.redis.running_pid()
    secure_ok = bool(secure_kafka and secure_redis)
    if secure_kafka or secure_redis:
        for name, pid, where in (
            ("secure kafka", secure_kafka, stack.secure.kafka.bootstrap),
            ("secure redis", secure_redis, stack.secure.redis.url),
        ):
            print(f"{name}  {f'up (pid {pid}) on {where}' if pid else 'down'}")
    ha_ok = not ha_lines or stack.ha.all_running()
    return 0 if (kafka and redis_pid and ha_ok) or secure_ok else 1


def _secure_stack(args: argparse.Namespace, stack: LocalStack) -> int:
    """`stack up --secure`, `stack env ROLE`, `stack add-subscriber TEAM`, `stack rotate USER`:
    names (topics, group, key prefix) from the environment, as the service reads them."""
    from consumer.bootstrap import topic_specs  # noqa: PLC0415
    from customer_ids.stack.roles import ROLES  # noqa: PLC0415

    settings = Settings.from_env()
    secure = stack.secure
    if args.redis_ha or args.registry or args.brokers != 1:
        raise ConfigError(
            "the secure stack is one broker and one Redis: drop --redis-ha, --registry and "
            "--brokers, or start those without --secure"
        )
    if args.action == "up":
        seconds = secure.up(settings, topic_specs(settings))
        print("\n".join(secure.env_lines("service", settings)))
        print(
            f"# secure stack ready in {seconds:.1f}s; every role's settings: "
            f"customer-ids stack env ROLE ({', '.join(ROLES)}, admin)",
            file=sys.stderr,
        )
        return 0
    if args.action in ("status", "down"):
        raise ConfigError(f"`stack {args.action}` covers the secure stack too: drop --secure")
    if args.action in ("compose-files", "provision"):
        return _compose_step(args, settings)
    if not secure.secrets_file.exists():
        raise ConfigError("there is no secure stack yet: run `customer-ids stack up --secure`")
    if args.action == "renew-certificate":
        secure.renew_certificate()
        print(
            f"# new server certificate in use: {secure.certificates.server_cert}", file=sys.stderr
        )
        return 0
    if not args.name:
        raise ConfigError(f"`stack {args.action}` needs a name: a role ({', '.join(ROLES)}, admin)")
    if args.action == "add-subscriber":
        secure.add_subscriber(args.name, settings)
        print(f"# subscriber team {args.name}: groups named {args.name}*", file=sys.stderr)
    elif args.action == "rotate":
        secure.rotate(args.name, settings)
        print(
            f"# new password for {args.name}: restart its processes with these settings",
            file=sys.stderr,
        )
    print("\n".join(secure.env_lines(args.name, settings)))
    return 0


def _compose_step(args: argparse.Namespace, settings: Settings) -> int:
    """What docker-compose's secure profile runs: its files once, then topics and ACLs."""
    from consumer.bootstrap import topic_specs  # noqa: PLC0415

    if args.action == "compose-files":
        from customer_ids.stack.compose_files import write_compose_files  # noqa: PLC0415

        if not args.name:
            raise ConfigError("`stack compose-files` needs the folder to write, e.g. /out")
        written = write_compose_files(Path(args.name), settings)
        print(f"# {', '.join(written) or 'nothing: the files exist'} in {args.name}")
        return 0
    from customer_ids.adapters.kafka_io import client_config  # noqa: PLC0415
    from customer_ids.stack.secure import provision  # noqa: PLC0415

    provision(client_config(settings.bootstrap_servers), settings, topic_specs(settings))
    print(f"# topics and ACLs in place on {settings.bootstrap_servers}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.worker is not None:
        from consumer.main import serve_worker  # noqa: PLC0415

        return serve_worker(settings, args.worker)
    from consumer.supervisor import supervise  # noqa: PLC0415

    return supervise(settings)


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from producer.cli import produce  # noqa: PLC0415

    return produce(
        settings,
        count=args.count,
        file=args.file,
        duplicates=args.duplicates,
        rate=args.rate,
        seed=args.seed,
        quiet=args.quiet,
    )


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.tools.import_report import run_import  # noqa: PLC0415

    return run_import(
        settings,
        args.file,
        dry_run=args.dry_run,
        report=args.report,
        chunk_rows=args.chunk_rows,
    )


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.adapters.schema_registry import framed_codec  # noqa: PLC0415
    from customer_ids.tools.tail import tail  # noqa: PLC0415

    stop = threading.Event()
    with contextlib.suppress(KeyboardInterrupt):
        tail(
            settings.bootstrap_servers,
            settings.output_topic,
            args.group,
            stop,
            max_events=args.count,
            idle_seconds=args.idle_timeout,
            codec=framed_codec(settings.registry(), settings.output_topic, "CustomerIdAssigned"),
        )
    return 0


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.adapters.schema_registry import framed_codec  # noqa: PLC0415
    from customer_ids.tools.watch import watch  # noqa: PLC0415

    stop = threading.Event()
    codec = framed_codec(settings.registry(), settings.output_topic, "CustomerIdAssigned")
    with contextlib.suppress(KeyboardInterrupt):
        tally = watch(
            settings.bootstrap_servers,
            settings.output_topic,
            args.group,
            codec,
            stop,
            idle_seconds=args.idle_timeout,
        )
        print(
            f"\n{tally.outputs:,} assignments committed: {len(tally.customers):,} customers, "
            f"{len(tally.numbers):,} distinct numbers, {tally.repeats:,} repeats of a known "
            f"customer, {tally.conflicts} conflicts"
        )
        return 1 if tally.conflicts else 0
    return 130


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.config.api_settings import ApiSettings  # noqa: PLC0415
    from customer_ids.tools.api import run_api  # noqa: PLC0415

    api = ApiSettings.from_env()
    port = api.port if args.port is None else args.port
    return run_api(settings, api, args.host or api.host, port)


def _api_token(args: argparse.Namespace) -> int:
    from customer_ids.tools.api import print_new_token  # noqa: PLC0415

    return print_new_token(args.name, [s.strip() for s in args.scopes.split(",") if s.strip()])


def _search_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict  # noqa: PLC0415

    from customer_ids.tools.search_reindex import reindex_search  # noqa: PLC0415

    print(json.dumps(asdict(reindex_search(settings))))
    return 0


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.domain.validation import validate_number  # noqa: PLC0415
    from customer_ids.tools.output import print_rows  # noqa: PLC0415

    results = [(number, validate_number(number, settings.router)) for number in args.numbers]
    rows = [
        {"number": number, "valid": result.valid, "detail": result.detail}
        for number, result in results
    ]
    columns = [("number", "number"), ("valid", "valid"), ("detail", "detail")]
    print_rows(rows, columns, as_json=args.json)
    return 0 if all(result.valid for _, result in results) else 1


def _lookup(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.tools.lookup import lookup  # noqa: PLC0415

    _check_lookup_args(args)
    found = lookup(
        settings,
        customer=args.customer,
        source=args.source,
        number=args.number,
        from_log=args.from_log,
    )
    if found is None:
        print("not found", file=sys.stderr)
        return 1
    from customer_ids.tools.output import print_rows  # noqa: PLC0415

    columns = [
        ("customer_number", "number"),
        ("source_system", "source"),
        ("customer_id", "customer"),
        ("sequence_name", "sequence"),
        ("sequence", "value"),
        ("from", "answered from"),
    ]
    if "merged_into" in found:  # the number it answers with is the survivor's
        columns[3:3] = [("merged_into", "merged into"), ("retired_number", "own (retired)")]
    print_rows([found], columns, as_json=args.json)
    return 0


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime  # noqa: PLC0415

    from customer_ids.tools.dlq import read_dead_letters, replay  # noqa: PLC0415

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise ConfigError(
                f"--since {args.since!r}: use an ISO time like 2026-01-31T12:00Z"
            ) from None
        if since.tzinfo is None:
            raise ConfigError(f"--since {args.since!r}: give a time zone, e.g. Z or +01:00")
    read = read_dead_letters(settings, since=since, reason=args.reason)
    letters = read.letters
    if read.erased:
        print(
            f"{read.erased} dead letter(s) of erased customers left out (`forget`)",
            file=sys.stderr,
        )
    if args.action == "list":
        from customer_ids.tools.output import print_rows  # noqa: PLC0415

        columns = [
            ("dead_lettered_at", "dead-lettered at"),
            ("error_class", "reason"),
            ("error_message", "message"),
            ("source", "from (topic/partition@offset)"),
            ("value_bytes", "bytes"),
            ("replayed_before", "replayed"),
        ]
        print_rows([letter.summary() for letter in letters], columns, as_json=args.json)
        print(f"{len(letters)} dead-lettered record(s)", file=sys.stderr)
        return 0
    if args.dry_run:
        print(f"would replay {len(letters)} record(s) to {settings.input_topic}", file=sys.stderr)
        return 0
    sent = replay(settings, letters)
    print(f"replayed {sent} record(s) to {settings.input_topic}", file=sys.stderr)
    return 0


def _forget(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.tools.forget import (  # noqa: PLC0415
        parse_customer,
        request_erasure,
        wait_until_applied,
    )

    requests = [parse_customer(text, args.by) for text in args.customers]
    landed = request_erasure(settings, requests)
    for request in landed:
        print(
            f"erasure of {request.customer_key} recorded "
            f"({settings.erasure_topic} {request.partition}@{request.offset})",
            file=sys.stderr,
        )
    if args.no_wait:
        return 0
    wait_until_applied(settings, settings.erasure_topic, landed, args.timeout)
    print(
        f"applied by the service: {len(landed)} customer(s) no longer found by email or "
        "phone; their numbers stay theirs and are never issued again",
        file=sys.stderr,
    )
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.tools.audit import run_audit  # noqa: PLC0415

    return run_audit(
        settings,
        group=args.group,
        metrics_port=args.metrics_port,
        gap_grace_s=args.gap_grace,
        until_caught_up=args.until_caught_up,
    )


def _config(args: argparse.Namespace, settings: Settings) -> int:
    for name, value in settings.masked().items():
        print(f"{name} = {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    settings_help = "\n".join(
        f"  {s.env:38} {s.default or '(unset)':28} {s.meaning}" for s in SETTINGS
    )
    parser = argparse.ArgumentParser(
        prog="customer-ids",
        description="Give every new customer one permanent customer number, exactly once.",
        epilog="settings (environment variables):\n" + settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "stack",
        help="start, inspect or stop the local Kafka broker and Redis",
        description="A real Apache Kafka broker (KRaft, jars from Maven Central) "
        "and redis-server on 127.0.0.1. `up` prints lines a shell can eval.",
    )
    p.add_argument(
        "action",
        choices=["up", "status", "down", *SECURE_ACTIONS],
    )
    p.add_argument(
        "name",
        nargs="?",
        help="env ROLE: the settings of a role (service, api, auditor, producer, subscriber, "
        "admin) or a subscriber team; add-subscriber TEAM: a new team's user and rights; "
        "rotate USER: a new password for a role or team (renew-certificate: a new server "
        "certificate, taken up without a restart); compose-files DIR: what docker-compose's "
        "secure profile mounts; provision: as admin (KAFKA_* settings), the topics and ACLs",
    )
    p.add_argument(
        "--secure",
        action="store_true",
        help="up: Kafka on SASL_SSL with ACLs and Redis on TLS with ACL users, on ports "
        "19492 and 16479, a user per role (README: Security); prints the service's settings",
    )
    p.add_argument(
        "--redis-ha",
        action="store_true",
        help="up: also a replica of Redis and three Sentinels (prints REDIS_SENTINELS)",
    )
    p.add_argument(
        "--brokers",
        type=int,
        choices=[1, 3],
        default=1,
        help="up: 3 runs a Kafka cluster (replication factor 3, min.insync.replicas 2) on "
        "ports 19092, 19192, 19292 instead of one broker",
    )
    p.add_argument(
        "--registry",
        action="store_true",
        help="up: also Apicurio Registry 3.0.9 (Confluent-compatible API) on port 18081",
    )
    p.set_defaults(handler=_stack, needs_settings=False)

    p = sub.add_parser(
        "serve",
        help="run the ID-assignment service",
        description="Consume CustomerCreated, assign numbers, publish "
        "CustomerIdAssigned exactly once. Runs CUSTOMER_IDS_WORKERS worker processes and "
        "restarts one that stalls or crashes. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    # Set by the supervisor: run one worker, the n-th (which names its metrics port in errors).
    p.add_argument("--worker", type=int, nargs="?", const=0, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=_serve)

    _add_producing(sub)
    _add_tools(sub)
    _add_erasure(sub)
    _add_import(sub)
    return parser


def _add_producing(sub: Any) -> None:
    """`produce`: events for demos and load."""
    p = sub.add_parser(
        "produce",
        help="emit CustomerCreated events (demo and load)",
        description="Generate realistic events, or read JSON lines from a file.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--count", type=int, help="generate this many new customers")
    src.add_argument("--file", type=Path, help="JSON lines, one CustomerCreated per line")
    p.add_argument(
        "--duplicates",
        type=float,
        default=0.0,
        metavar="P",
        help="also re-send a fraction P (0..1) of events, to watch idempotency",
    )
    p.add_argument(
        "--rate", type=float, default=0.0, help="events per second (0: as fast as possible)"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed, for repeatable runs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_produce, needs=_always("kafka", "registry"))


def _add_erasure(sub: Any) -> None:
    """`forget`: the right to erasure."""
    p = sub.add_parser(
        "forget",
        help="erase customers' personal data (GDPR): not found by email or phone any more",
        description="Records a CustomerErasureRequested per customer on the erasure topic (as "
        "a CRM's delete hook does) and waits until the service applied it: the customer's "
        "search entries go, its dead letters are no longer listed or replayed, its number "
        "stays its own and is never issued again. Safe to repeat. Exit 69 when the service "
        "did not apply it in time (it stays recorded and is applied when the service runs).",
    )
    p.add_argument("customers", nargs="+", metavar="SRC/ID", help="e.g. crm/42")
    p.add_argument(
        "--by",
        default="customer-ids forget",
        help="who asks, recorded with the erasure: a ticket id, never a person's name",
    )
    p.add_argument("--no-wait", action="store_true", help="record the requests, do not wait")
    p.add_argument(
        "--timeout", type=float, default=120.0, help="longest wait for the service (seconds)"
    )
    p.set_defaults(handler=_forget, needs=_always("kafka", "registry"))
    _add_merge(sub)


def _add_merge(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`merge` and `unmerge`: one request each, answered plainly."""
    p = sub.add_parser(
        "merge",
        help="merge a customer into another (a duplicate, or a link across systems)",
        description="Records a CustomerMergeRequested on the merge topic (as a CRM's merge "
        "hook does) and waits until the service applied it. The merged customer then answers "
        "with the survivor's number everywhere; its own number is retired: found, valid, "
        "never issued again. Refused (exit 65, nothing changed): a customer without a number, "
        "itself, a survivor that is merged away, a customer merged into another already. "
        "Exit 69 when the service did not apply it in time.",
    )
    p.add_argument("--survivor", required=True, metavar="SRC/ID", help="the customer that stays")
    p.add_argument("--merged", required=True, metavar="SRC/ID", help="the duplicate or link")
    _add_merge_options(p, "customer-ids merge")
    p = sub.add_parser(
        "unmerge",
        help="undo a merge: the customer gets its own retired number back",
        description="Records an unmerge on the merge topic and waits until the service "
        "applied it: the customer (and those merged into it) answer with its own number again.",
    )
    p.add_argument("--merged", required=True, metavar="SRC/ID", help="the merged customer")
    _add_merge_options(p, "customer-ids unmerge")


def _add_merge_options(p: argparse.ArgumentParser, by: str) -> None:
    p.add_argument("--by", default=by, help="who asks, recorded: a ticket id, never a name")
    p.add_argument(
        "--timeout", type=float, default=120.0, help="longest wait for the service (seconds)"
    )
    p.set_defaults(handler=_merge, needs=_always("kafka", "redis", "registry"))


def _merge(args: argparse.Namespace, settings: Settings) -> int:
    from customer_ids.tools.merging import (  # noqa: PLC0415
        MergeRefusedByServiceError,
        describe,
        merge_and_wait,
        merge_request,
    )

    request = merge_request(args.merged, getattr(args, "survivor", None), args.by)
    try:
        result = merge_and_wait(settings, request, args.timeout)
    except MergeRefusedByServiceError as exc:
        print(f"customer-ids: refused, nothing changed: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(describe(result, request))
    return 0


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="one JSON object a line instead of a table"
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return value


def _add_import(sub: Any) -> None:
    """`import`: a legacy CRM's numbers."""
    p = sub.add_parser(
        "import",
        help="adopt a legacy CRM's customer numbers as committed assignments",
        description="FILE is CSV with the header source_system,customer_id,customer_number "
        "(or JSON lines with those fields). Every pair is checked first: one number for two "
        "customers, two numbers for one customer (in the file or against what is committed), "
        "a number issued to another customer, a wrong check digit or a malformed line refuse "
        "the whole file with each line named (exit 65), and nothing is written. Then each "
        "counter is raised above its highest imported value and the pairs are committed in "
        "chunks, safe beside a running service. Re-running the same file is a no-op; one "
        "interrupted half way completes.",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="every check, nothing written")
    p.add_argument("--report", type=Path, metavar="PATH", help="write the report (JSON lines)")
    p.add_argument(
        "--chunk-rows",
        type=_positive,
        default=CHUNK_ROWS,
        help=f"pairs per transaction (default {CHUNK_ROWS:,})",
    )
    p.set_defaults(handler=_import, needs=_always("kafka", "redis", "registry"))


def _add_tools(sub: Any) -> None:
    """Commands beside the service: read, check, look up, replay, configure."""
    p = sub.add_parser(
        "tail",
        help="print committed CustomerIdAssigned events as JSON lines",
        description="A downstream subscriber (read_committed). Each --group "
        "gets every event: sales, support and marketing each use their own.",
    )
    p.add_argument("--group", default="customer-ids-tail", help="consumer group")
    p.add_argument("--count", type=int, default=0, help="exit after this many events")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=0,
        help="exit after this many seconds without an event",
    )
    p.set_defaults(handler=_tail, needs=_always("kafka", "registry"))

    p = sub.add_parser(
        "watch",
        help="a live table of the newest assignments and running counts, for people",
        description="Follow the output topic (read_committed) and draw the newest assignments "
        "and counts; at the end print a summary. Exit 1 if a number or customer conflict "
        "was seen.",
    )
    p.add_argument("--group", default="customer-ids-watch", help="consumer group")
    p.add_argument(
        "--idle-timeout", type=float, default=0, help="stop after this many idle seconds"
    )
    p.set_defaults(handler=_watch, needs=_always("kafka", "registry"))

    p = sub.add_parser(
        "audit",
        help="watch the output topic for a number given twice (an independent check)",
        description="Read every committed CustomerIdAssigned from the beginning, then follow: "
        "report a number given to two customers, a customer given two numbers, a number that "
        "does not validate (errors) and a gap in a sequence (a warning), as metrics and one "
        "log line each. Writes nothing.",
    )
    p.add_argument("--group", default="customer-ids-audit", help="consumer group (progress only)")
    p.add_argument(
        "--metrics-port", type=int, default=9410, help="/metrics, /healthz, /readyz (0: off)"
    )
    p.add_argument(
        "--gap-grace",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="a missing value is a gap when still missing this long after the topic was read "
        "(longer than CUSTOMER_IDS_TRANSACTION_TIMEOUT_MS)",
    )
    p.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop once the whole topic is read; exit 1 if an error was found",
    )
    p.set_defaults(handler=_audit, needs=_audit_needs)

    p = sub.add_parser(
        "validate",
        help="check numbers against the configured sequences",
        description="Exit 0 when every number is well formed for a configured "
        "sequence and its check digit is right, 1 otherwise.",
    )
    p.add_argument("numbers", nargs="+")
    _add_json(p)
    p.set_defaults(handler=_validate)

    p = sub.add_parser("lookup", help="customer -> number, or number -> customer")
    p.add_argument("--customer", help="the upstream customer_id")
    p.add_argument("--source", help="the upstream source_system of --customer")
    p.add_argument("--number", help="a customer number")
    p.add_argument(
        "--from-log",
        action="store_true",
        help="answer from the compacted output topic instead of Redis",
    )
    _add_json(p)
    p.set_defaults(handler=_lookup, needs=_lookup_needs)

    p = sub.add_parser(
        "dlq",
        help="list dead-lettered records, or replay them after a fix",
        description="list: a table of the dead-lettered records (reason, source, never the "
        "value; --json: one JSON object a line). replay: re-publish the original bytes to "
        "the input topic with replay.* audit headers; repeating a replay never gives a "
        "customer a second number.",
    )
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("--since", help="only records dead-lettered at or after this ISO time")
    p.add_argument("--reason", help="only this error.class, e.g. ValidationError")
    p.add_argument("--dry-run", action="store_true", help="replay: count, send nothing")
    _add_json(p)
    p.set_defaults(handler=_dlq, needs=_always("kafka"))

    p = sub.add_parser(
        "api",
        help="serve the lookup API and the support page",
        description="HTTP API (/v1, /docs, /metrics, /healthz, /readyz) and the support page "
        "at /. Settings: CUSTOMER_IDS_API_* (README). Stops cleanly on SIGTERM.",
    )
    p.add_argument("--host", help="listen address (default: CUSTOMER_IDS_API_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: CUSTOMER_IDS_API_PORT, 8080)")
    p.set_defaults(handler=_api)

    p = sub.add_parser(
        "api-token",
        help="make an API token: the token (shown once) and its tokens-file line",
    )
    p.add_argument("name", help="who holds it; audit lines name it")
    p.add_argument(
        "--scopes",
        required=True,
        help="comma-separated: numbers:read, search:personal, customers:write",
    )
    p.set_defaults(handler=_api_token, needs_settings=False)

    p = sub.add_parser(
        "search-reindex",
        help="rewrite the search index under CUSTOMER_IDS_SEARCH_KEY (key rotation)",
    )
    p.set_defaults(handler=_search_reindex, needs=_always("kafka", "redis"))

    p = sub.add_parser("config", help="print the effective settings, secrets masked")
    p.set_defaults(handler=_config)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A service (`serve`, its workers, `api`) keeps Python's traceback on stderr: its
        # supervisor cannot pass --debug, and a crash must be diagnosable from its log.
        if not isinstance(exc, CustomerIdsError) and (args.debug or _is_service(args)):
            raise
        return _exit_code(exc)


def _is_service(args: argparse.Namespace) -> bool:
    """`serve` (and its workers), `api` and a standing `audit`: long-running, supervised."""
    if args.command == "audit":
        return not args.until_caught_up
    return args.command in ("serve", "api")


def _run(args: argparse.Namespace) -> int:
    if not getattr(args, "needs_settings", True):
        configure_logging()
        return int(args.handler(args))
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    needs: Needs | None = getattr(args, "needs", None)
    if needs is not None:
        _reach(settings, needs(args, settings))
    return int(args.handler(args, settings))


def _exit_code(exc: Exception) -> int:
    """One line on stderr for what went wrong, and the exit status that says what kind."""
    if isinstance(exc, UnavailableError):
        print(f"customer-ids: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if isinstance(exc, ConfigError):
        print(f"customer-ids: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(exc, CustomerIdsError):
        print(f"customer-ids: {exc}", file=sys.stderr)
        return 1
    return _unexpected(exc)


def _unexpected(exc: Exception) -> int:
    """One line for an error nobody planned for; a lost Kafka or Redis connection is told as
    unavailable. The traceback is for --debug."""
    dependency = _lost_dependency(exc)
    if dependency:
        print(
            f"customer-ids: {dependency} failed during the command: {exc}; check that it "
            "runs (`customer-ids stack status`) and try again (--debug shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    print(
        f"customer-ids: unexpected {type(exc).__name__}: {exc} (run with --debug for the "
        "traceback)",
        file=sys.stderr,
    )
    return 1


def _lost_dependency(exc: Exception) -> str | None:
    """ "Kafka" or "Redis" when `exc` is a lost connection to it, else None (a script error or
    a refused command is no outage)."""
    import redis  # noqa: PLC0415 - only on this error path
    from confluent_kafka import KafkaException  # noqa: PLC0415

    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "Redis"
    if isinstance(exc, KafkaException):
        return "Kafka"
    return None


if __name__ == "__main__":
    sys.exit(main())
