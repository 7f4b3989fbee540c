"""Who is asking: a Bearer token on the JSON API, the login cookie on the support page.

401 when there is no token or it is not one of ours; 403 when it lacks the scope. The cookie
holds a server-side session's random id, never the token (tools/api/sessions.py): HttpOnly
(page scripts cannot read it), SameSite=Strict (no other site can make the browser send it)
and, unless switched off for plain HTTP, Secure under the `__Host-` prefix (this host only,
HTTPS only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from customer_ids.config.api_settings import ApiSettings
from customer_ids.domain.api_tokens import ApiToken, Scope
from customer_ids.tools.api.context import context_of

bearer = HTTPBearer(
    auto_error=False,
    description="An API token. Scopes: numbers:read (customers and numbers), "
    "search:personal (search by email or phone).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require(
    scope: Scope,
) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[ApiToken]]:
    """A dependency: the caller's token, which must carry `scope`. Async because it never
    blocks (a digest and a dict lookup): FastAPI would run a plain function in a thread."""

    async def check(request: Request, credentials: Credentials) -> ApiToken:
        if credentials is None:
            raise HTTPException(
                401, "a Bearer token is needed", headers={"WWW-Authenticate": "Bearer"}
            )
        token = context_of(request).tokens.verify(credentials.credentials)
        if token is None:
            raise HTTPException(
                401,
                "this token is not known",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request.state.token_name = token.name
        if not token.allows(scope):
            raise HTTPException(403, f"token {token.name!r} lacks the scope {scope}")
        return token

    return check


def cookie_name(api: ApiSettings) -> str:
    return "__Host-cid_token" if api.cookie_secure else "cid_token"


def page_token(request: Request) -> ApiToken | None:
    """The support page's signed-in token, or None. The page looks customers and numbers up,
    so a token without `numbers:read` is no sign-in, on every request (not only at login: a
    cookie can be set by hand)."""
    context = context_of(request)
    session_id = request.cookies.get(cookie_name(context.api), "")
    token = context.sessions.token_of(session_id) if session_id else None
    if token is None or not token.allows("numbers:read"):
        return None
    request.state.token_name = token.name
    return token


def sign_in(request: Request, response: Response, token: ApiToken) -> None:
    """Start a session for `token`; the cookie carries only its id."""
    context = context_of(request)
    api = context.api
    response.set_cookie(
        cookie_name(api),
        context.sessions.start(token),
        max_age=api.session_minutes * 60,
        path="/",
        secure=api.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def sign_out(request: Request, response: Response) -> None:
    """End the session on the server (a copied cookie stops working too) and in the browser."""
    context = context_of(request)
    api = context.api
    session_id = request.cookies.get(cookie_name(api), "")
    if session_id:
        context.sessions.end(session_id)
    response.delete_cookie(
        cookie_name(api), path="/", secure=api.cookie_secure, httponly=True, samesite="strict"
    )
