"""The support page: server-rendered forms over the same lookups as /v1, no scripts at all.

One form per task (sign in, find, check a number, sign out), each control labelled, in
reading order, so it works from the keyboard alone. Searches go by POST, so an email or phone
never lands in a URL, a browser history or an access log; and the page never echoes one back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from redis.exceptions import RedisError

from customer_ids.adapters.log_reader import TopicReadError
from customer_ids.domain.api_tokens import ApiToken
from customer_ids.domain.number_check import check_number, example_number
from customer_ids.domain.query_kind import query_kind
from customer_ids.domain.search_terms import TermKind
from customer_ids.tools.api.auth import page_token, sign_in, sign_out
from customer_ids.tools.api.context import ApiContext, context_of
from customer_ids.tools.api.errors import (
    NotSearchableError,
    RateLimitedError,
    SearchOffError,
    UnavailableError,
)

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": under it a browser sends `Origin: null` even on the page's own form
    # posts, and null is refused (a sandboxed frame elsewhere sends it too). "same-origin"
    # still tells no other site where its visitors came from.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
FormText = Annotated[str, Form(max_length=400)]
RegionText = Annotated[str, Form(max_length=2)]
REDIS_DOWN = "Redis does not answer; try again shortly."
HINT = "Type a customer number, source/customer id (e.g. webshop/42), an email or a phone number."


def _render(request: Request, name: str, values: dict[str, Any], status: int = 200) -> HTMLResponse:
    token_name = getattr(request.state, "token_name", None)
    example = example_number(context_of(request).router)
    response = templates.TemplateResponse(
        request, name, {"token_name": token_name, "example": example, **values}, status_code=status
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site (SameSite=Strict already keeps the cookie off
    such requests; this also covers the login form, which has no cookie yet). `Origin: null`
    is what a sandboxed frame or a redirect chain from another site sends: refused too."""
    origin = request.headers.get("origin")
    if origin and (origin == "null" or urlsplit(origin).netloc != request.headers.get("host")):
        raise HTTPException(403, "cross-site form posts are refused")


def _home() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


@router.get("/", response_class=HTMLResponse)
def page(request: Request) -> HTMLResponse:
    if page_token(request) is None:
        return _render(request, "login.html", {})
    return _render(request, "page.html", {"region": context_of(request).api.default_region})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, token: FormText) -> Response:
    _same_origin(request)
    found = context_of(request).tokens.verify(token.strip())
    if found is None:
        return _render(request, "login.html", {"error": "That token is not known."}, 401)
    if not found.allows("numbers:read"):
        error = f"The token {found.name!r} may not read customer numbers."
        return _render(request, "login.html", {"error": error}, 403)
    response = _home()
    sign_in(request, response, found)
    return response


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    _same_origin(request)
    response = _home()
    sign_out(request, response)
    return response


@router.post("/check", response_class=HTMLResponse)
def check(request: Request, number: FormText) -> Response:
    _same_origin(request)
    token = page_token(request)
    if token is None:
        return _home()
    context = context_of(request)
    report = check_number(number, context.router, context.lookups.legacy_shapes())
    values = {
        "report": report,
        "checked": report.number,
        "region": context.api.default_region,
        "focus": "number",
    }
    return _render(request, "page.html", values)


@router.post("/search", response_class=HTMLResponse)
def search(request: Request, q: FormText, region: RegionText = "") -> Response:
    _same_origin(request)
    token = page_token(request)
    if token is None:
        return _home()
    context = context_of(request)
    region = region.strip().upper() or context.api.default_region
    try:
        values, status = _find(context, token, q.strip(), region)
    except (UnavailableError, TopicReadError) as exc:
        values, status = {"message": str(exc), "problem": True}, 503
    except RedisError:
        values, status = {"message": REDIS_DOWN, "problem": True}, 503
    return _render(request, "page.html", {"region": region, **values}, status)


def _find(
    context: ApiContext, token: ApiToken, text: str, region: str
) -> tuple[dict[str, Any], int]:
    """Template values and status for one search box entry."""
    kind = query_kind(text, context.router, context.lookups.legacy_shapes())
    if kind == "number":
        return _find_number(context, token, text)
    if kind == "customer":
        source, _, customer_id = text.partition("/")
        record = context.lookups.customer(source.strip(), customer_id.strip())
        if record is None:
            return {"query": text, "message": f"{text} has no customer number (yet)."}, 200
        return {"query": text, "customers": [record]}, 200
    if kind == "unknown":
        return {"query": text, "message": HINT, "problem": True}, 200
    return _search_personal(context, token, kind, text, region)


def _find_number(context: ApiContext, token: ApiToken, text: str) -> tuple[dict[str, Any], int]:
    try:
        report, owner = context.lookups.number(text, token.name)
    except RateLimitedError as exc:
        return {"message": f"Too many number lookups: {exc}.", "problem": True}, 429
    if owner is None:
        message = report.explanation if not report.valid else "No customer holds this number."
        return {"query": text, "message": message, "problem": not report.valid}, 200
    return {"query": text, "customers": [owner]}, 200


def _search_personal(
    context: ApiContext, token: ApiToken, kind: TermKind, text: str, region: str
) -> tuple[dict[str, Any], int]:
    """Email or phone: never echoed back into the page."""
    if not token.allows("search:personal"):
        message = f"The token {token.name!r} may not search by email or phone."
        return {"message": message, "problem": True}, 403
    try:
        result = context.search.search(token.name, kind, text, region, "page")
    except RateLimitedError as exc:
        return {"message": f"Too many searches: {exc}.", "problem": True}, 429
    except NotSearchableError as exc:
        return {"message": f"That is {exc}.", "problem": True}, 422
    except SearchOffError as exc:
        return {"message": str(exc), "problem": True}, 503
    if not result.customers:
        return {"message": f"No customer found by this {kind}."}, 200
    return {"customers": result.customers, "searched_by": kind}, 200
