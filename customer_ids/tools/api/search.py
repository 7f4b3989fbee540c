"""Search by email or phone: normalise, digest under each configured key, look the digests up.

Every search, answered or refused, leaves one `search_audit` line: the token's name, the kind,
the outcome and how many customers were found. Never the value searched for, nor its digest
(a digest plus the key would confirm a guess).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from customer_ids.adapters.logs import get_logger
from customer_ids.adapters.search_index import SearchIndex
from customer_ids.domain.search_terms import TermKind, normalise, search_digest
from customer_ids.tools.api.errors import NotSearchableError, RateLimitedError, SearchOffError
from customer_ids.tools.api.lookups import Lookups
from customer_ids.tools.api.metrics import ApiMetrics
from customer_ids.tools.api.rate_limit import TokenBuckets
from customer_ids.tools.api.records import CustomerRecord

log = get_logger(__name__)
MAX_RESULTS = 50  # an address shared by more customers than this is not one caller's
Via = Literal["api", "page"]


@dataclass(frozen=True)
class SearchResult:
    kind: TermKind
    customers: list[CustomerRecord]
    truncated: bool


class CustomerSearch:
    def __init__(
        self,
        keys: Sequence[bytes],
        index: SearchIndex,
        lookups: Lookups,
        buckets: TokenBuckets,
        metrics: ApiMetrics,
    ) -> None:
        """`keys`: the current search key first, then the previous one during a rotation."""
        self._keys = list(keys)
        self._index = index
        self._lookups = lookups
        self._buckets = buckets
        self._metrics = metrics

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def search(
        self, token_name: str, kind: TermKind, raw: str, region: str, via: Via
    ) -> SearchResult:
        outcome, count = "error", 0
        try:
            result = self._search(token_name, kind, raw, region)
            outcome, count = "ok", len(result.customers)
            return result
        except SearchOffError:
            outcome = "off"
            raise
        except RateLimitedError:
            outcome = "rate_limited"
            raise
        except NotSearchableError:
            outcome = "invalid"
            raise
        finally:
            self._metrics.searches.labels(kind=kind, outcome=outcome).inc()
            log.info(
                "search_audit", token=token_name, kind=kind, via=via, outcome=outcome, results=count
            )

    def _search(self, token_name: str, kind: TermKind, raw: str, region: str) -> SearchResult:
        if not self._keys:
            raise SearchOffError(
                "search by email or phone is off: CUSTOMER_IDS_SEARCH_KEY is not set"
            )
        wait_s = self._buckets.take(token_name)
        if wait_s > 0:
            raise RateLimitedError(wait_s)
        value = normalise(kind, raw, region)
        if value is None:
            raise NotSearchableError(_not_searchable(kind))
        found = sorted(self._index.find(search_digest(key, kind, value) for key in self._keys))
        customers = self._lookups.records(found[:MAX_RESULTS])
        return SearchResult(kind, customers, truncated=len(found) > MAX_RESULTS)


def _not_searchable(kind: TermKind) -> str:
    if kind == "email":
        return "not an email address (name@domain.example)"
    return (
        "not a phone number: give it with + and the country code, or say which country it "
        "is in (region, e.g. DE)"
    )
