"""/metrics, /healthz (alive) and /readyz (Redis answers), as the service has them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from customer_ids.tools.api.context import context_of

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = context_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", response_class=PlainTextResponse)
async def healthz() -> str:
    return "ok\n"


# Plain functions run in a worker thread; the others never block, so they stay on the loop.
@router.get("/readyz", response_class=PlainTextResponse)
def readyz(request: Request) -> PlainTextResponse:
    try:
        context_of(request).ping()
    except RedisError as exc:
        return PlainTextResponse(f"not ready: Redis does not answer ({type(exc).__name__})\n", 503)
    return PlainTextResponse("ready\n")
