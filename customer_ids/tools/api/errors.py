"""Why the API could not answer, each mapped to one HTTP status (app.py) and one page message."""

from __future__ import annotations

from customer_ids.domain.errors import CustomerIdsError, UnavailableError

# Also when Redis holds no valid state right now (wiped, or being rebuilt from Kafka): a miss
# would be a guess, so the API says 503 rather than 404. Try again in a few seconds.
__all__ = ["NotSearchableError", "SearchOffError", "UnavailableError"]


class SearchOffError(CustomerIdsError):
    """No CUSTOMER_IDS_SEARCH_KEY: no index is kept, so there is nothing to search."""


class NotSearchableError(CustomerIdsError):
    """The value is not plausibly an email or a phone number; the message never repeats it."""


class RateLimitedError(CustomerIdsError):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many searches; try again in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s
