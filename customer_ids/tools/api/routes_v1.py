"""/v1: customer -> number, number -> customer (with its check), search by email or phone, and
a number on request."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from customer_ids.domain.api_tokens import ApiToken
from customer_ids.domain.errors import ValidationError
from customer_ids.tools.api.auth import require
from customer_ids.tools.api.context import context_of
from customer_ids.tools.api.models import (
    CustomerIn,
    CustomerOut,
    NumberOut,
    Pending,
    Problem,
    SearchIn,
    SearchOut,
)
from customer_ids.tools.api.numbering import EventTooLargeError

router = APIRouter(prefix="/v1", tags=["lookups"])
Reader = Annotated[ApiToken, Depends(require("numbers:read"))]
Searcher = Annotated[ApiToken, Depends(require("search:personal"))]
Writer = Annotated[ApiToken, Depends(require("customers:write"))]
LOCATION = {
    "description": "/v1/customers/{source_system}/{customer_id}",
    "schema": {"type": "string"},
}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or not one of ours"},
    403: {"model": Problem, "description": "the token lacks the scope"},
    503: {"model": Problem, "description": "Redis is down or being rebuilt from Kafka"},
}


@router.get(
    "/customers/{source_system}/{customer_id:path}",
    responses={**AUTH_ERRORS, 404: {"model": Problem, "description": "no number yet"}},
)
def customer_number(
    source_system: str, customer_id: str, request: Request, _: Reader
) -> CustomerOut:
    """The number of the customer `customer_id` of the upstream system `source_system`."""
    record = context_of(request).lookups.customer(source_system, customer_id)
    if record is None:
        raise HTTPException(404, "this customer has no number (yet)")
    return CustomerOut.of(record)


@router.get(
    "/numbers/{number:path}",
    responses={
        **AUTH_ERRORS,
        429: {"model": Problem, "description": "too many lookups that read the output topic"},
    },
)
def number_owner(number: str, request: Request, token: Reader) -> NumberOut:
    """Is `number` well formed, is its check digit right (and if not, what should it be), and
    which customer holds it: `valid` and `owner` carry the answer. Without the reverse index
    a lookup that must read the output topic is rate limited per token (429)."""
    report, owner = context_of(request).lookups.number(number, token.name)
    return NumberOut.of(report, owner)


@router.post(
    "/search",
    responses={
        **AUTH_ERRORS,
        422: {"model": Problem, "description": "not an email or phone number"},
        429: {"model": Problem, "description": "too many searches; see Retry-After"},
    },
)
def search(body: SearchIn, request: Request, token: Searcher) -> SearchOut:
    """Customers whose email or phone (normalised: README) is the one given. Needs the scope
    search:personal; rate limited per token; each search is audited without its value."""
    context = context_of(request)
    region = body.region or context.api.default_region
    if body.email is not None:
        result = context.search.search(token.name, "email", body.email, region, "api")
    else:
        assert body.phone is not None
        result = context.search.search(token.name, "phone", body.phone, region, "api")
    return SearchOut.of(result)


@router.post(
    "/customers",
    status_code=201,
    response_model=CustomerOut,
    responses={
        200: {
            "model": CustomerOut,
            "description": "the customer had a number already (no event was sent)",
            "headers": {"Location": LOCATION},
        },
        201: {
            "model": CustomerOut,
            "description": "the customer's number, committed now",
            "headers": {"Location": LOCATION},
        },
        202: {
            "model": Pending,
            "description": "sent, not committed in time: ask the Location (asking again is safe)",
            "headers": {"Location": LOCATION},
        },
        401: AUTH_ERRORS[401],
        403: AUTH_ERRORS[403],
        413: {"model": Problem, "description": "the event would be larger than Kafka takes"},
        422: {"model": Problem, "description": "not a valid CustomerCreated: the field and why"},
        503: {"model": Problem, "description": "Kafka did not confirm the event: ask again"},
    },
)
async def create_customer(
    body: CustomerIn, request: Request, response: Response, _: Writer
) -> CustomerOut | JSONResponse:
    """Send a new customer (a CustomerCreated, exactly as producer/ sends it) and wait for its
    committed number. The API never allocates: the service numbers the event once, so asking
    again, or at another API process, gives the same number. The Location (GET, scope
    numbers:read) answers the number from then on."""
    numbering = context_of(request).numbering
    try:
        event = numbering.event_of(body)
    except EventTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    except ValidationError as exc:
        raise HTTPException(422, str(exc)) from None
    answer = await numbering.request(event)
    location = "/v1/customers/{}/{}".format(
        quote(event.source_system, safe=""), quote(event.customer_id, safe="")
    )
    if answer.record is None:
        pending = Pending(
            detail="the event was sent; its number was not committed in time. Ask the "
            "location: the service numbers it once",
            event_id=event.event_id,
            location=location,
        )
        return JSONResponse(pending.model_dump(), status_code=202, headers={"Location": location})
    response.status_code = answer.status
    response.headers["Location"] = location
    return CustomerOut.of(answer.record)
