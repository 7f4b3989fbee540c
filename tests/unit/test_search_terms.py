"""Search terms: normalisation is stable (idempotent, blind to case, spacing and phone
formats), and digests depend on the key and the kind."""

from __future__ import annotations

import hashlib
import hmac

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer_ids.domain.search_terms import (
    normalise_email,
    normalise_phone,
    search_digest,
    terms_for,
)

KEY = b"k" * 32
REGIONS = ["DE", "US", "GB", "FR", "IT", "IN", "BR", "JP", "AU", "CH"]
TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
keys = st.binary(min_size=32, max_size=64)
spacing = st.sampled_from(["", " ", "  ", "\t", "\n", " \t "])


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[phonenumbers.PhoneNumber, str]:
    region = draw(st.sampled_from(REGIONS))
    number = phonenumbers.example_number_for_type(region, draw(st.sampled_from(TYPES)))
    assert number is not None
    return number, region


def test_the_digest_is_hmac_sha256_of_kind_and_value_cut_to_32_hex() -> None:
    """The contract any other implementation (another language, a rebuild tool) must meet."""
    expected = hmac.new(KEY, b"email:jane@example.com", hashlib.sha256).hexdigest()[:32]
    assert search_digest(KEY, "email", "jane@example.com") == expected


@given(st.text(max_size=80))
def test_email_normalisation_is_idempotent(raw: str) -> None:
    once = normalise_email(raw)
    if once is not None:
        assert normalise_email(once) == once


@given(st.emails(), spacing, spacing, st.booleans())
def test_case_and_surrounding_space_give_the_same_email_digest(
    email: str, before: str, after: str, upper: bool
) -> None:
    plain = normalise_email(email)
    assert plain is not None
    variant = normalise_email(before + (email.upper() if upper else email.title()) + after)
    assert variant == plain
    assert search_digest(KEY, "email", variant) == search_digest(KEY, "email", plain)


@pytest.mark.parametrize(
    "raw", ["", "jane", "jane@", "@example.com", "jane@example", "ja ne@example.com", "a@b..com"]
)
def test_what_is_not_an_email(raw: str) -> None:
    assert normalise_email(raw) is None


def test_email_keeps_dots_and_tags() -> None:
    """Different mailboxes on many domains: never merged."""
    assert normalise_email("Jane.Doe+Shop@Example.COM") == "jane.doe+shop@example.com"


@given(phone_numbers(), st.data())
def test_every_way_of_writing_a_phone_number_gives_one_e164(
    sample: tuple[phonenumbers.PhoneNumber, str], data: st.DataObject
) -> None:
    number, region = sample
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    written = [
        e164,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.RFC3966),
        # As dialled from inside the country: 00 49 ... in Germany, 011 1 ... from the US.
        phonenumbers.format_out_of_country_calling_number(number, region),
        "(" + e164[:3] + ") " + "-".join(e164[3:][i : i + 3] for i in range(0, 12, 3)),
    ]
    form = data.draw(st.sampled_from(written))
    text = data.draw(spacing) + form + data.draw(spacing)
    assert normalise_phone(text, region) == e164
    assert normalise_phone(e164, data.draw(st.sampled_from(REGIONS))) == e164  # + wins
    assert normalise_phone(e164, region.lower()) == e164


@given(st.text(max_size=40), st.sampled_from(REGIONS))
def test_phone_normalisation_is_idempotent(raw: str, region: str) -> None:
    once = normalise_phone(raw, region)
    if once is not None:
        assert once.startswith("+")
        assert normalise_phone(once, region) == once


def test_a_phone_without_plus_needs_a_region() -> None:
    assert normalise_phone("030 1234567", "") is None
    assert normalise_phone("030 1234567", "DE") == "+49301234567"
    assert normalise_phone("12", "DE") is None  # too short to be anyone's


@given(keys, keys, st.emails())
def test_different_keys_give_different_digests(key_a: bytes, key_b: bytes, email: str) -> None:
    value = normalise_email(email)
    assert value is not None
    if key_a != key_b:
        assert search_digest(key_a, "email", value) != search_digest(key_b, "email", value)


@given(keys, st.text(min_size=1, max_size=40))
def test_the_kind_is_part_of_the_digest(key: bytes, value: str) -> None:
    assert search_digest(key, "email", value) != search_digest(key, "phone", value)


def test_terms_for_skips_what_is_missing_or_invalid() -> None:
    both = terms_for("Jane@Example.com", "030 1234567", "DE", KEY)
    assert both == [
        search_digest(KEY, "email", "jane@example.com"),
        search_digest(KEY, "phone", "+49301234567"),
    ]
    assert terms_for(None, None, "DE", KEY) == []
    assert terms_for("not an email", "12", "DE", KEY) == []
    assert terms_for(None, "+1 202 555 0143", "ZZ", KEY) == [
        search_digest(KEY, "phone", "+12025550143")
    ]
