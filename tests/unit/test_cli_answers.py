"""The review's findings on the commands' answers: data shown as it is, a service's crash
keeps its traceback, only a lost connection counts as unavailable, a registry URL with
credentials, and a --file that is a pipe."""

from __future__ import annotations

import argparse
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import KafkaError, KafkaException

from customer_ids.adapters.reachability import require_registry
from customer_ids.cli import _is_service, _lost_dependency
from customer_ids.tools.output import print_rows
from producer.cli import read_json_lines


def test_cells_are_shown_as_they_are_never_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    # Before: "acme[eu]-7 :thumbs_up:" printed as "acme-7 👍", and "x[/y]" raised MarkupError.
    print_rows(
        [{"customer": "acme[eu]-7 :thumbs_up:", "message": "type a|[/b] refused"}],
        [("customer", "customer"), ("message", "message")],
        as_json=False,
    )
    out = capsys.readouterr().out
    assert "acme[eu]-7 :thumbs_up:" in out
    assert "type a|[/b] refused" in out


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["serve"], True),
        (["api"], True),
        (["audit"], True),
        (["audit", "--until-caught-up"], False),
        (["dlq", "list"], False),
        (["validate", "X"], False),
    ],
)
def test_services_keep_their_tracebacks(argv: list[str], service: bool) -> None:
    from customer_ids.cli import build_parser  # noqa: PLC0415

    args: argparse.Namespace = build_parser().parse_args(argv)
    assert _is_service(args) is service


def test_only_a_lost_connection_is_unavailable() -> None:
    assert _lost_dependency(redis.ConnectionError("refused")) == "Redis"
    assert _lost_dependency(redis.TimeoutError("slow")) == "Redis"
    assert _lost_dependency(KafkaException(KafkaError(KafkaError._TRANSPORT))) == "Kafka"
    assert _lost_dependency(redis.ResponseError("NOSCRIPT")) is None  # a script error, not down
    assert _lost_dependency(ValueError("x")) is None


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_registry_url_with_credentials_is_reached_at_its_host(registry: int) -> None:
    # Before: urllib took "user:pass@127.0.0.1" for the host and the check said "unreachable".
    require_registry(f"http://user:secret@127.0.0.1:{registry}/apis/ccompat/v7", 5)


def test_a_file_that_is_a_pipe_is_read_once(tmp_path: Path) -> None:
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    line = (
        '{"customer_id": "C1", "source_system": "crm", "customer_type": "B", '
        '"country_code": "DE"}\n'
    )

    def write() -> None:
        with fifo.open("w") as out:
            out.write(line * 3)

    writer = threading.Thread(target=write)
    writer.start()
    # Before: a first pass checked the lines and emptied the pipe; the second sent nothing.
    assert len(list(read_json_lines(fifo))) == 3
    writer.join(5)
