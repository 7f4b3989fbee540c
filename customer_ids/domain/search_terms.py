"""Search terms: an email or phone number turned into a keyed digest, so that Redis can find a
customer by what they tell support without ever holding the value itself.

Both sides must agree byte for byte: the service writes `terms_for(...)` when it records an
assignment, and the API computes the same digest from what support types. So the rules are
deliberately few and stable:

- email: surrounding whitespace trimmed, the whole address lowercased (most providers treat
  the local part case-insensitively, and people type it either way); nothing else is changed:
  dots and `+tags` stay, since on many domains they are different mailboxes.
- phone: parsed with Google's libphonenumber rules (`phonenumbers`) and written in E.164
  (`+4930123456`): spaces, dashes, dots, brackets, a national trunk `0`, an international
  `00` prefix all disappear. A number without `+` is read in the customer's country.

The digest is HMAC-SHA256 under a secret key: without the key, a digest cannot be checked
against a list of guessed emails or the few billion phone numbers there are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

import phonenumbers

from customer_ids.domain.events import CustomerCreated

TermKind = Literal["email", "phone"]
DIGEST_HEX = 32  # 128 bits: collisions as unlikely as random UUIDs', half the index's bytes

# Deliberately loose: an address a mail server would accept, not RFC 5322 in full. Quoted
# local parts and spaces are refused rather than guessed at.
_EMAIL = re.compile(r"^[^\s@\"<>(),;:\\\[\]]{1,64}@[^\s@\"<>(),;:\\\[\]]+\.[^\s@\"<>(),;:\\\[\]]+$")
_MAX_EMAIL = 254
_MAX_PHONE_INPUT = 64
_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE


def normalise_email(raw: str) -> str | None:
    """The address trimmed and lowercased, or None when it is not plausibly an email."""
    text = raw.strip().lower()
    if len(text) > _MAX_EMAIL or not text.isprintable() or not _EMAIL.fullmatch(text):
        return None
    domain = text.rsplit("@", 1)[1]
    if any(not label for label in domain.split(".")):
        return None
    return text


def normalise_phone(raw: str, region: str) -> str | None:
    """The number in E.164, or None when it is not a possible phone number.

    `region` (ISO 3166-1 alpha-2, any case) says how to read a number written without `+`.
    "Possible" (a plausible length for its country, area code included) rather than "valid"
    (inside an allocated range): allocations change with every release of the metadata, and
    the service and the API must agree on a number even when one of them was updated first."""
    text = raw.strip()
    if not text or len(text) > _MAX_PHONE_INPUT or not text.isprintable():
        return None
    try:
        parsed = phonenumbers.parse(text, region.strip().upper() or None)
    except phonenumbers.NumberParseException:
        return None
    # Local-only numbers (no area code) are refused: the same digits are another line in the
    # next town.
    if phonenumbers.is_possible_number_with_reason(parsed) != _POSSIBLE:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def search_digest(key: bytes, kind: TermKind, normalised: str) -> str:
    """The index entry for one normalised value: HMAC-SHA256 of `kind:value`, 32 hex chars.
    The kind is part of the message, so an email and a phone can never share an entry."""
    mac = hmac.new(key, f"{kind}:{normalised}".encode(), hashlib.sha256)
    return mac.hexdigest()[:DIGEST_HEX]


def normalise(kind: TermKind, raw: str, region: str = "") -> str | None:
    """One entry point for both kinds, for callers that hold the kind as data."""
    return normalise_email(raw) if kind == "email" else normalise_phone(raw, region)


def terms_for(email: str | None, phone: str | None, region: str, key: bytes) -> list[str]:
    """The digests an event's email and phone are found under; an invalid one is skipped."""
    terms: list[str] = []
    address = normalise_email(email) if email else None
    if address is not None:
        terms.append(search_digest(key, "email", address))
    number = normalise_phone(phone, region) if phone else None
    if number is not None:
        terms.append(search_digest(key, "phone", number))
    return terms


def event_terms(key: bytes, event: CustomerCreated) -> list[str]:
    """The digests a CustomerCreated is found under: its email, and its phone read in the
    customer's country."""
    return terms_for(event.email, event.phone, event.country_code, key)
