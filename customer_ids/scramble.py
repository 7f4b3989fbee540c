"""A keyed bijection on the N-digit range, so consecutive customers get unrelated-looking
numbers that stay unique by construction (no lookup table, nothing to collide).

A 4-round Feistel network with HMAC-SHA256 rounds permutes the smallest even-bit power-of-two
domain that holds 10**N values; cycle walking (encrypt again while the result is >= 10**N)
turns that into a permutation of exactly [0, 10**N). A permutation of a finite set restricted
by cycle walking is still a permutation, which the tests check exhaustively for small N.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

ROUNDS = 4


@lru_cache(maxsize=64)
def _domain(digits: int) -> tuple[int, int, int]:
    size = int(10**digits)
    bits = max(2, (size - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    return size, half, (1 << half) - 1


def _feistel(x: int, half: int, mask: int, key: bytes) -> int:
    left, right = x >> half, x & mask
    for round_number in range(ROUNDS):
        digest = hmac.new(
            key, bytes([round_number]) + right.to_bytes(8, "big"), hashlib.sha256
        ).digest()
        left, right = right, left ^ (int.from_bytes(digest[:8], "big") & mask)
    return (left << half) | right


def scramble(value: int, digits: int, key: bytes) -> int:
    """The image of `value` (0 <= value < 10**digits) under the keyed permutation."""
    size, half, mask = _domain(digits)
    if not 0 <= value < size:
        raise ValueError(f"{value} is outside the {digits}-digit range")
    x = _feistel(value, half, mask, key)
    while x >= size:
        x = _feistel(x, half, mask, key)
    return x


def _feistel_inverse(x: int, half: int, mask: int, key: bytes) -> int:
    left, right = x >> half, x & mask
    for round_number in reversed(range(ROUNDS)):
        digest = hmac.new(
            key, bytes([round_number]) + left.to_bytes(8, "big"), hashlib.sha256
        ).digest()
        left, right = right ^ (int.from_bytes(digest[:8], "big") & mask), left
    return (left << half) | right


def unscramble(image: int, digits: int, key: bytes) -> int:
    """The value that scramble() mapped to `image`: the inverse permutation."""
    size, half, mask = _domain(digits)
    if not 0 <= image < size:
        raise ValueError(f"{image} is outside the {digits}-digit range")
    x = _feistel_inverse(image, half, mask, key)
    while x >= size:
        x = _feistel_inverse(x, half, mask, key)
    return x


def capacity(digits: int) -> int:
    """How many numbers a scrambled sequence can issue: values 1 .. 10**digits - 1."""
    return int(10**digits) - 1
