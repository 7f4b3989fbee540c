"""The support page's forms over HTTP (the browser test is tests/e2e/test_support_page.py):
sign-in cookie flags, what each box finds, what the page never echoes, cross-site posts."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.helpers.api import TOKENS, Numbered, api_client, number_customers
from tests.helpers.service import Scenario
from tests.helpers.services import Endpoints


@pytest.fixture(scope="module")
def numbered(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Numbered:
    return number_customers(Scenario(endpoints), tmp_path_factory.mktemp("page"))


def signed_in(numbered: Numbered, token: str) -> TestClient:
    client = api_client(numbered.settings())
    assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client


def test_sign_in_sets_a_strict_http_only_secure_cookie(numbered: Numbered) -> None:
    client = api_client(numbered.settings(), CUSTOMER_IDS_API_COOKIE_SECURE="on")
    page = client.get("/")
    assert page.status_code == 200
    assert '<label for="token">' in page.text
    answer = client.post("/login", data={"token": TOKENS.searcher}, follow_redirects=False)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-cid_token=")
    assert TOKENS.searcher not in cookie  # a session's random id, never the token itself
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/", "Max-Age=28800"):
        assert flag in cookie
    assert "Domain" not in cookie


def test_a_bad_or_unfit_token_does_not_sign_in(numbered: Numbered) -> None:
    client = api_client(numbered.settings())
    bad = client.post("/login", data={"token": "cidt_guess"}, follow_redirects=False)
    assert bad.status_code == 401
    assert "not known" in bad.text
    assert "set-cookie" not in bad.headers
    unfit = client.post("/login", data={"token": TOKENS.search_only}, follow_redirects=False)
    assert unfit.status_code == 403
    assert "set-cookie" not in unfit.headers
    # Without a sign-in the forms send you to it.
    assert client.post("/search", data={"q": "x"}, follow_redirects=False).status_code == 303


def test_the_search_box_finds_by_each_kind(numbered: Numbered) -> None:
    client = signed_in(numbered, TOKENS.searcher)
    jane_numbers = {numbered.number_of("webshop/C1"), numbered.number_of("crm/A/7")}

    page = client.post("/search", data={"q": " Jane.Doe@example.COM ", "region": ""})
    assert page.status_code == 200
    assert all(number in page.text for number in jane_numbers)
    assert "2 customers found by email" in page.text
    assert "jane.doe" not in page.text.lower()  # personal data is not echoed back
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]

    phone = client.post("/search", data={"q": "030 1234567", "region": "de"})
    assert numbered.number_of("webshop/C1") in phone.text
    assert "1234567" not in phone.text.replace(numbered.number_of("webshop/C1"), "")

    customer = client.post("/search", data={"q": "crm/A/7"})
    assert numbered.number_of("crm/A/7") in customer.text
    # Found through Redis, which keeps no time: the page says where the time is, not
    # "not known" (issue 27).
    assert "not known" not in customer.text
    assert "in the output topic (found in redis)" in customer.text

    number = numbered.number_of("webshop/C2")
    by_number = client.post("/search", data={"q": number.lower()})
    assert "webshop" in by_number.text and "C2" in by_number.text

    typo = number[:-1] + str((int(number[-1]) + 3) % 10)
    explained = client.post("/search", data={"q": typo})
    assert f"the check digit should be {number[-1]}" in explained.text

    unknown = client.post("/search", data={"q": "what?"})
    assert "Type a customer number" in unknown.text


def test_check_a_number(numbered: Numbered) -> None:
    client = signed_in(numbered, TOKENS.reader)
    assert (
        "valid: a number of sequence CU"
        in client.post("/check", data={"number": "CU-00000001-8"}).text
    )
    assert (
        "the check digit should be 8, not 3: probably a typo"
        in client.post("/check", data={"number": "CU-00000001-3"}).text
    )


def test_personal_search_needs_its_scope_on_the_page_too(numbered: Numbered) -> None:
    client = signed_in(numbered, TOKENS.reader)
    page = client.post("/search", data={"q": "bob@example.org"})
    assert page.status_code == 403
    assert "may not search by email or phone" in page.text
    assert numbered.number_of("webshop/C2") not in page.text


def test_cross_site_posts_are_refused_and_sign_out_works(numbered: Numbered) -> None:
    client = signed_in(numbered, TOKENS.searcher)
    evil = {"origin": "https://evil.example"}
    assert client.post("/search", data={"q": "crm/A/7"}, headers=evil).status_code == 403
    same = {"origin": "http://testserver"}
    assert client.post("/search", data={"q": "crm/A/7"}, headers=same).status_code == 200
    session = client.cookies.get("cid_token")
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303
    assert 'cid_token=""' in out.headers["set-cookie"]
    assert '<label for="token">' in client.get("/").text
    # Signed out on the server: the old cookie, kept or copied, no longer signs anyone in.
    replayed = api_client(numbered.settings())
    replayed.cookies.set("cid_token", session or "")
    assert (
        replayed.post("/search", data={"q": "crm/A/7"}, follow_redirects=False).status_code == 303
    )


def test_a_login_from_origin_null_is_refused(numbered: Numbered) -> None:
    # A sandboxed frame or a cross-site redirect sends "Origin: null"; it was let through.
    client = api_client(numbered.settings())
    null = {"origin": "null"}
    answer = client.post(
        "/login", data={"token": TOKENS.searcher}, headers=null, follow_redirects=False
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_a_cookie_set_by_hand_carries_no_more_than_its_token_s_scopes(numbered: Numbered) -> None:
    # A search:personal-only token cannot sign in; set as the cookie by hand it got unlimited
    # number and customer lookups. Now every page action asks for numbers:read.
    client = api_client(numbered.settings())
    client.cookies.set("cid_token", TOKENS.search_only)
    number = numbered.number_of("webshop/C2")
    for form, data in (("/search", {"q": number}), ("/search", {"q": "crm/A/7"})):
        answer = client.post(form, data=data, follow_redirects=False)
        assert answer.status_code == 303  # back to the sign-in
        assert number not in answer.text
    assert '<label for="token">' in client.get("/").text
