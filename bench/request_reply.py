"""A number on request (issue 22): latency of POST /v1/customers against the service's own
produce-to-committed latency at the same rate, measured in the same run on the same service
(events sent by the producer library from this process and their committed outputs read back,
no HTTP and no API); returning customers (answered without an event) against
GET /v1/customers; 16 concurrent clients sending each customer twice, alternately to two API
processes. Prints a table, writes bench/results/request_reply.json.

    .venv/bin/python bench/request_reply.py            # 20 s per rate
    .venv/bin/python bench/request_reply.py --smoke    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from consumer.bootstrap import topic_specs
from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings
from customer_ids.domain.api_tokens import new_token, token_line
from customer_ids.domain.errors import CustomerIdsError
from customer_ids.domain.events import CustomerCreated, now_utc
from producer.emitter import CustomerEventProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import ROOT, percentile, service_env

from tests.helpers.own_redis import free_port
from tests.helpers.verify import read_committed

RESULTS = ROOT / "bench" / "results"


def _body(customer: str) -> dict[str, str]:
    return {
        "source_system": "bench",
        "customer_id": customer,
        "customer_type": "INDIVIDUAL",
        "country_code": "DE",
    }


class Stack:
    """The service and `apis` API processes on topics of this run's own."""

    def __init__(self, bootstrap: str, redis_url: str, apis: int = 1) -> None:
        tag = uuid.uuid4().hex[:8]
        self.token = new_token()
        scopes = ["customers:write", "numbers:read"]
        self.env = service_env(
            bootstrap,
            redis_url,
            tag,
            CUSTOMER_IDS_API_TOKENS=token_line("bench", scopes, self.token),
            CUSTOMER_IDS_API_ASSIGN_TIMEOUT_MS="10000",
        )
        self.settings = Settings.from_env(self.env)
        ensure_topics(bootstrap, topic_specs(self.settings))
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.urls: list[str] = []
        commands = [["serve"]]
        for _ in range(apis):
            port = free_port()
            self.urls.append(f"http://127.0.0.1:{port}")
            commands.append(["api", "--port", str(port)])
        self.procs: list[subprocess.Popen[bytes]] = []
        for n, command in enumerate(commands):
            with (RESULTS / f"request-reply-{tag}-{n}.log").open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "customer_ids.cli", *command],
                        env={**self.env, "PYTHONPATH": str(ROOT)},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
            limits=httpx.Limits(max_connections=300),
        )
        deadline = time.monotonic() + 120
        for n in range(apis):  # a first answer from each proves service and API up
            while self.post(f"warm-{n}", n)[1] not in (200, 201):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service or API did not come up; see {RESULTS}")
                time.sleep(0.5)
        self.library = CustomerEventProducer(
            bootstrap,
            self.settings.input_topic,
            output_topic=self.settings.output_topic,
            **{"linger.ms": 0},
        )

    def post(self, customer: str, api: int = 0) -> tuple[float, int, str]:
        started = time.perf_counter()
        try:
            answer = self.client.post(f"{self.urls[api]}/v1/customers", json=_body(customer))
        except httpx.HTTPError:
            return (time.perf_counter() - started) * 1000, 0, ""
        number = answer.json().get("customer_number", "") if answer.status_code < 300 else ""
        return (time.perf_counter() - started) * 1000, answer.status_code, number

    def get(self, customer: str) -> tuple[float, int, str]:
        started = time.perf_counter()
        answer = self.client.get(f"{self.urls[0]}/v1/customers/bench/{customer}")
        return (time.perf_counter() - started) * 1000, answer.status_code, ""

    def send_and_wait(self, customer: str) -> tuple[float, int, str]:
        """The service's own latency: the library sends the event and reads the committed
        output back, with no HTTP and no API in between."""
        event = CustomerCreated(str(uuid.uuid4()), customer, "bench", "INDIVIDUAL", "DE", now_utc())
        started = time.perf_counter()
        try:
            assigned = self.library.emit_event_and_wait(event, 10)
        except CustomerIdsError:
            return (time.perf_counter() - started) * 1000, 0, ""
        return (time.perf_counter() - started) * 1000, 201, assigned.customer_number

    def stop(self) -> None:
        self.library.close()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(60)
        self.client.close()


def paced(call: Any, customers: list[str], rate: int) -> list[tuple[float, int, str]]:
    """Open loop: each request starts on schedule whether or not earlier ones answered."""
    with ThreadPoolExecutor(max_workers=256) as pool:
        started = time.monotonic()
        futures: list[Future[tuple[float, int, str]]] = []
        for i, customer in enumerate(customers):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(call, customer))
        return [f.result() for f in futures]


def summary(results: list[tuple[float, int, str]]) -> dict[str, Any]:
    """Percentiles of the answers that carried a number (200/201); the rest counted apart."""
    answered = [ms for ms, status, _ in results if status in (200, 201)]
    statuses: dict[str, int] = {}
    for _, status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": len(results),
        "statuses": statuses,
        "without_a_number": len(results) - len(answered),
        **{f"p{p}_ms": round(percentile(answered, p), 2) for p in (50, 95, 99)},
    }


def measure(bootstrap: str, redis_url: str, rates: list[int], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"rates": {}}
    for rate in rates:
        stack = Stack(bootstrap, redis_url)
        try:
            tag = uuid.uuid4().hex[:6]
            paced(stack.post, [f"w{tag}-{i}" for i in range(rate * 2)], rate)  # warm-up
            count = int(rate * seconds)
            # The baseline first, then the request path: the same service, the same rate.
            service = summary(
                paced(stack.send_and_wait, [f"s{tag}-{i}" for i in range(count)], rate)
            )
            new = [f"n{tag}-{i}" for i in range(count)]
            posted = summary(paced(stack.post, new, rate))
            returning = summary(paced(stack.post, new[: rate * 5], rate))
            gets = summary(paced(stack.get, new[: rate * 5], rate))
        finally:
            stack.stop()
        out["rates"][str(rate)] = {
            "service": service,
            "post_new": posted,
            "post_returning": returning,
            "get": gets,
            "added_p99_ms": round(posted["p99_ms"] - service["p99_ms"], 2),
            "returning_over_get_p99": round(returning["p99_ms"] / gets["p99_ms"], 2),
        }
    out["concurrent"] = concurrent_repeats(bootstrap, redis_url)
    return out


def concurrent_repeats(
    bootstrap: str, redis_url: str, clients: int = 16, each: int = 25
) -> dict[str, Any]:
    """16 clients, every customer sent twice at once, once to each of two API processes: one
    number each, the output topic's."""
    stack = Stack(bootstrap, redis_url, apis=2)
    try:
        customers = [f"r{uuid.uuid4().hex[:8]}" for _ in range(clients * each)]
        asked = [(c, n) for c in customers for n in (0, 1)]
        with ThreadPoolExecutor(max_workers=clients) as pool:
            answers = list(pool.map(lambda ask: stack.post(*ask), asked))
    finally:
        stack.stop()
    committed = read_committed(bootstrap, stack.settings.output_topic).numbers_by_customer()
    differing = [
        {
            "customer": c,
            "api": n,
            "status": status,
            "answered": number,
            "output_topic": sorted(committed.get(f"bench/{c}", ())),
        }
        for (c, n), (_, status, number) in zip(asked, answers, strict=True)
        if committed.get(f"bench/{c}") != {number}
    ]
    return {
        "customers": len(customers),
        "requests": len(answers),
        "statuses": summary(answers)["statuses"],
        "customers_with_one_number": sum(
            1 for c in customers if len(committed.get(f"bench/{c}", ())) == 1
        ),
        "answers_differing_from_output_topic": len(differing),
        "differing": differing[:10],
    }


def print_table(result: dict[str, Any]) -> None:
    table = Table(title="POST /v1/customers against the service's own latency (same run)")
    for column in (
        "rate/s",
        "service p50/p95/p99 ms",
        "POST new p50/p95/p99 ms",
        "added p99 ms",
        "returning p99 ms",
        "GET p99 ms",
        "returning/GET",
    ):
        table.add_column(column, justify="right")
    for rate, r in result["rates"].items():
        post = r["post_new"]
        service = r["service"]
        table.add_row(
            rate,
            f"{service['p50_ms']:.1f} / {service['p95_ms']:.1f} / {service['p99_ms']:.1f}",
            f"{post['p50_ms']:.1f} / {post['p95_ms']:.1f} / {post['p99_ms']:.1f}",
            f"{r['added_p99_ms']:.1f}",
            f"{r['post_returning']['p99_ms']:.1f}",
            f"{r['get']['p99_ms']:.1f}",
            f"{r['returning_over_get_p99']:.2f}",
        )
    Console(width=150).print(table)
    c = result["concurrent"]
    print(
        f"16 clients, each customer twice: {c['customers']} customers, "
        f"{c['customers_with_one_number']} with one number, "
        f"{c['answers_differing_from_output_topic']} answers differing from the output topic"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rates", default="50,200", help="requests per second, comma-separated")
    parser.add_argument("--smoke", action="store_true", help="3 s per rate, 50/s only")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    rates, seconds = ([50], 3.0) if args.smoke else (rates, args.seconds)
    result = measure(
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
        rates,
        seconds,
    )
    print_table(result)
    path = RESULTS / ("request_reply-smoke.json" if args.smoke else "request_reply.json")
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
