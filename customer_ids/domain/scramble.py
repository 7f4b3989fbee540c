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
from collections.abc import Callable
from functools import lru_cache

ROUNDS = 4


@lru_cache(maxsize=64)
def _domain(digits: int) -> tuple[int, int, int]:
    size = int(10**digits)
    bits = max(2, (size - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    return size, half, (1 << half) - 1


def _round(key: bytes, round_number: int, half_value: int, mask: int) -> int:
    digest = hmac.new(key, bytes([round_number]) + half_value.to_bytes(8, "big"), hashlib.sha256)
    return int.from_bytes(digest.digest()[:8], "big") & mask


def _feistel(x: int, half: int, mask: int, key: bytes) -> int:
    left, right = x >> half, x & mask
    for round_number in range(ROUNDS):
        left, right = right, left ^ _round(key, round_number, right, mask)
    return (left << half) | right


def _feistel_inverse(x: int, half: int, mask: int, key: bytes) -> int:
    left, right = x >> half, x & mask
    for round_number in reversed(range(ROUNDS)):
        left, right = right ^ _round(key, round_number, left, mask), left
    return (left << half) | right


def _walk(step: Callable[[int, int, int, bytes], int], x: int, digits: int, key: bytes) -> int:
    """Cycle walking: apply `step` until the result falls inside the 10**digits range."""
    size, half, mask = _domain(digits)
    if not 0 <= x < size:
        raise ValueError(f"{x} is outside the {digits}-digit range")
    x = step(x, half, mask, key)
    while x >= size:
        x = step(x, half, mask, key)
    return x


def scramble(value: int, digits: int, key: bytes) -> int:
    """The image of `value` (0 <= value < 10**digits) under the keyed permutation."""
    return _walk(_feistel, value, digits, key)


def unscramble(image: int, digits: int, key: bytes) -> int:
    """The value that scramble() mapped to `image`: the inverse permutation."""
    return _walk(_feistel_inverse, image, digits, key)


def capacity(digits: int) -> int:
    """How many numbers a scrambled sequence can issue: values 1 .. 10**digits - 1."""
    return int(10**digits) - 1
