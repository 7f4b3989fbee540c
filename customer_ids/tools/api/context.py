"""The API's composition root: everything a request needs, built once from the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis
from fastapi import Request

from consumer.claims import ClaimsLog
from customer_ids.adapters.redis_keys import RedisKeys
from customer_ids.adapters.search_index import SearchIndex
from customer_ids.config.api_settings import ApiSettings
from customer_ids.config.settings import Settings
from customer_ids.domain.api_tokens import TokenBook
from customer_ids.domain.sequences import Router
from customer_ids.store.factory import number_store, redis_client
from customer_ids.store.terms import RedisTermsStore
from customer_ids.tools.api.committed import CommittedNumbers
from customer_ids.tools.api.lookups import Lookups
from customer_ids.tools.api.metrics import ApiMetrics
from customer_ids.tools.api.numbering import NumberOnRequest, ProducerSettings
from customer_ids.tools.api.owners import LogOwners
from customer_ids.tools.api.rate_limit import TokenBuckets
from customer_ids.tools.api.search import CustomerSearch
from customer_ids.tools.api.sessions import Sessions


@dataclass(frozen=True)
class ApiContext:
    api: ApiSettings
    router: Router
    tokens: TokenBook
    lookups: Lookups
    search: CustomerSearch
    metrics: ApiMetrics
    ping: Callable[[], object]
    sessions: Sessions
    numbering: NumberOnRequest


def search_keys(settings: Settings) -> list[bytes]:
    """The current key, then the previous one while a rotation is under way."""
    return [
        secret.get_secret_value().encode()
        for secret in (settings.search_key, settings.search_key_previous)
        if secret is not None
    ]


def build_context(
    settings: Settings, api: ApiSettings, client: redis.Redis | None = None
) -> ApiContext:
    client = client or redis_client(settings)
    store = number_store(client, settings.redis_prefix, owner="api")
    metrics = ApiMetrics()
    owners = None if settings.reverse_index else LogOwners.for_settings(settings, api.owner_cache)
    committed = CommittedNumbers(ClaimsLog(settings.bootstrap_servers, settings.watermark_topic))
    log_owners = owners or LogOwners.for_settings(settings, api.owner_cache)
    scans = TokenBuckets(api.scan_rate, api.scan_burst)
    index = SearchIndex(client, RedisKeys(settings.redis_prefix))
    terms = RedisTermsStore(client, RedisKeys(settings.redis_prefix))

    def alike(customer_key: str) -> set[str]:
        return index.find(terms.digests_of(customer_key))

    lookups = Lookups(
        store,
        settings.router,
        owners,
        metrics,
        committed,
        log_owners=log_owners,
        scans=scans,
        alike=alike if settings.search_key is not None else None,
    )
    search = CustomerSearch(
        search_keys(settings),
        index,
        lookups,
        TokenBuckets(api.search_rate, api.search_burst),
        metrics,
    )
    producing = ProducerSettings(
        settings.bootstrap_servers, settings.input_topic, settings.output_topic, settings.registry()
    )
    numbering = NumberOnRequest(lookups, settings.router, producing, api.assign_timeout_ms / 1000)
    return ApiContext(
        api,
        settings.router,
        api.token_book,
        lookups,
        search,
        metrics,
        client.ping,
        Sessions(api.session_minutes),
        numbering,
    )


def context_of(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context
