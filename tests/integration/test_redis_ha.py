"""The failover helper does what the fault tests need: a replica held behind and then promoted
really loses the writes it missed, and the service's Sentinel client follows the failover.
Only redis-server is needed: no Kafka, no shared stack."""

from __future__ import annotations

from pathlib import Path

import redis

from customer_ids.config.settings import Settings
from customer_ids.store.connection import connect_redis
from tests.helpers.redis_ha import RedisHA


def test_a_failover_to_a_held_back_replica_loses_its_missed_writes(tmp_path: Path) -> None:
    with RedisHA(tmp_path) as ha:
        client = connect_redis(Settings.from_env(ha.sentinels_env()))
        old_primary = ha.primary_port
        client.set("a", 1)
        ha.hold_replica_behind()
        client.set("a", 2)  # acknowledged, by the primary alone
        seconds = ha.fail_over()

        assert ha.primary_port != old_primary
        with redis.Redis(port=ha.primary_port) as new_primary:
            assert new_primary.get("a") == b"1", "the write the replica missed is lost"
        assert seconds < 60

        # The pooled connection still points at the dead primary. At most the first call
        # meets it; redis-py's pool then asks the Sentinels and reaches the new primary.
        try:
            value = client.get("a")
        except redis.ConnectionError:
            value = client.get("a")
        assert value == b"1"
        client.set("b", 1)
        with redis.Redis(port=ha.primary_port) as new_primary:
            assert new_primary.get("b") == b"1"
        client.close()
