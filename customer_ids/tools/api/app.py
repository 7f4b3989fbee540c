"""The ASGI app: routers, errors mapped to statuses, and one canonical line per request."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from customer_ids.adapters.log_reader import TopicReadError
from customer_ids.adapters.logs import get_logger
from customer_ids.tools.api import page, routes_ops, routes_v1
from customer_ids.tools.api.context import ApiContext
from customer_ids.tools.api.errors import (
    NotSearchableError,
    RateLimitedError,
    SearchOffError,
    UnavailableError,
)
from customer_ids.tools.api.metrics import ApiMetrics

log = get_logger(__name__)
QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/readyz", "/static"})
FIXED_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})

DESCRIPTION = """Customer numbers for people and services: customer -> number, number ->
customer (with a check-digit explanation of typos), and search by email or phone through a
keyed index that never holds either, and a number on request (POST /v1/customers: the
committed number of a customer sent now). Authenticate with `Authorization: Bearer <token>`;
scopes `numbers:read`, `search:personal` and `customers:write`. The support page is at `/`."""


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(title="customer-ids", version="1", description=DESCRIPTION)
    app.state.context = context
    app.include_router(routes_v1.router)
    app.include_router(routes_ops.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    _add_error_handlers(app)
    app.add_middleware(RequestLine, metrics=context.metrics)
    return app


def _where(loc: Sequence[object]) -> str:
    where = ".".join(str(part) for part in loc if part != "body")
    return f"{where}: " if where else ""


def _route_of(scope: Scope) -> str:
    """The route's template, never the path itself: paths hold customer ids and numbers."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return str(route)
    path = str(scope.get("path", ""))
    if path in FIXED_PATHS:
        return path
    return "/static" if path.startswith("/static/") else "unmatched"


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back; for /v1/search that is an email or phone.
        problems = "; ".join(_where(e["loc"]) + str(e["msg"]) for e in exc.errors())
        return _problem(422, problems)

    @app.exception_handler(RateLimitedError)
    async def limited(_: Request, exc: RateLimitedError) -> JSONResponse:
        retry = str(max(1, round(exc.retry_after_s + 0.5)))
        return _problem(429, str(exc), {"Retry-After": retry})

    @app.exception_handler(NotSearchableError)
    async def not_searchable(_: Request, exc: NotSearchableError) -> JSONResponse:
        return _problem(422, str(exc))

    @app.exception_handler(SearchOffError)
    async def search_off(_: Request, exc: SearchOffError) -> JSONResponse:
        return _problem(503, str(exc))

    @app.exception_handler(UnavailableError)
    async def unavailable(_: Request, exc: UnavailableError) -> JSONResponse:
        return _problem(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(RedisError)
    async def redis_down(_: Request, exc: RedisError) -> JSONResponse:
        log.warning("api_redis_error", error=type(exc).__name__)
        return _problem(503, "Redis does not answer; try again shortly", {"Retry-After": "5"})

    @app.exception_handler(TopicReadError)
    async def kafka_down(_: Request, exc: TopicReadError) -> JSONResponse:
        log.warning("api_kafka_error", error=str(exc)[:300])
        return _problem(503, "the output topic could not be read; try again shortly")


class RequestLine:
    """Metrics and one canonical log line per request, as plain ASGI middleware (Starlette's
    BaseHTTPMiddleware costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._account(scope, status, time.perf_counter() - started)

    def _account(self, scope: Scope, status: int, elapsed: float) -> None:
        route = _route_of(scope)
        method = str(scope["method"])
        self.metrics.requests.labels(route=route, method=method, status=status).inc()
        self.metrics.latency.labels(route=route).observe(elapsed)
        if route not in QUIET_ROUTES:
            log.info(
                "api_request",
                route=route,
                method=method,
                status=status,
                ms=round(elapsed * 1000, 2),
                token=scope.get("state", {}).get("token_name"),
            )
