"""`customer-ids api`: the app under uvicorn, on a socket bound first so that a port in use
stops it with a message naming the port (exit 2), as the service's metrics port does."""

from __future__ import annotations

import signal
import socket
import sys
from types import FrameType

import uvicorn

from customer_ids.adapters.logs import get_logger
from customer_ids.config.api_settings import ApiSettings
from customer_ids.config.settings import Settings
from customer_ids.domain.api_tokens import SCOPES, new_token, token_line
from customer_ids.domain.errors import ConfigError
from customer_ids.tools.api.app import create_app
from customer_ids.tools.api.context import build_context

log = get_logger(__name__)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # a response written in two parts waits for the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the API cannot listen on {host}:{port} ({exc.strerror}); choose another with "
            "CUSTOMER_IDS_API_PORT or --port"
        ) from None
    sock.set_inheritable(True)
    return sock


def run_api(settings: Settings, api_settings: ApiSettings, host: str, port: int) -> int:
    """Serve until SIGTERM or Ctrl-C (uvicorn's handlers finish requests in flight)."""
    sock = bind(host, port)
    app = create_app(build_context(settings, api_settings))
    config = uvicorn.Config(
        app, access_log=False, log_config=None, server_header=False, timeout_graceful_shutdown=10
    )
    log.info(
        "api_listening",
        address=f"{host}:{sock.getsockname()[1]}",
        tokens=len(api_settings.token_book),
        search="on" if settings.search_key else "off",
        reverse_index="on" if settings.reverse_index else "off",
    )
    # uvicorn stops cleanly on SIGTERM, then raises the signal again for the handler it found;
    # with this one in place a clean stop exits 0, as the service's does.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("api_stopped")
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    """SIGTERM after uvicorn's own shutdown: nothing left to do."""


def print_new_token(name: str, scopes: list[str]) -> int:
    """`customer-ids api-token NAME --scopes ...`: a fresh token (shown once) and its line."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise ConfigError(f"--scopes {unknown or '(none)'}: use one or more of {', '.join(SCOPES)}")
    token = new_token()
    line = token_line(name, scopes, token)
    print(f"token (give it to {name}; it is not stored anywhere): {token}", file=sys.stderr)
    print(line)
    return 0
