"""A real Sentinel failover to a replica that lagged, under two running instances.

The replica is cut off for real (paused and its link killed, DESIGN §5: pausing alone lets it
catch up), numbers are committed on the primary meanwhile, the primary is SIGKILLed and
Sentinel promotes the replica: acknowledged writes are lost. The service follows the new
primary without a restart and must notice it went back before allocating from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.test_redis_back_in_time import committed_count, report
from tests.helpers.events import make_events, send
from tests.helpers.load import first_commit_after, recovered_after, returning, send_slowly, sized
from tests.helpers.redis_ha import RedisHA
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.verify import assert_invariants, wait_for_outputs


def test_failover_to_a_replica_that_lagged_keeps_every_number_unique(
    scenario: Scenario, tmp_path: Path, start_service: Callable[..., ServiceProcess]
) -> None:
    with RedisHA(tmp_path / "ha") as ha:
        events = make_events(sized(3000, 20000), duplicates=0.1, seed=1501)
        scenario.create_topics()
        sender = send_slowly(scenario, events, seconds=sized(16, 40))
        env = ha.sentinels_env()
        instances = [
            start_service(name, CUSTOMER_IDS_TRANSACTIONAL_ID=f"{scenario.tag}-{name}", **env)
            for name in ("a", "b")
        ]
        wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, sized(300, 2000))
        ha.hold_replica_behind()
        behind_from = committed_count(scenario)
        # Numbers committed while the replica is cut off: the promoted replica will not have them.
        wait_for_outputs(
            scenario.endpoints.bootstrap, scenario.output_topic, behind_from + sized(300, 2000)
        )
        failed_at = time.time()
        promotion_s = ha.fail_over()
        sender.join()
        back = returning(events, sized(300, 2000), "f00d")
        send(scenario, back)
        committed = wait_for_outputs(
            scenario.endpoints.bootstrap,
            scenario.output_topic,
            len(events) + len(back),
            timeout=300,
        )
        logs = "".join(i.log() for i in instances)
        resume = first_commit_after(logs, failed_at)
        report(
            f"failover (promoted in {promotion_s:.1f}s)", len(events) + len(back), committed, resume
        )
        assert_invariants(events + back, committed, allow_gaps=True)
        assert recovered_after(logs, failed_at), "the recovery must run, and say why"
        assert all(i.running() for i in instances), "the service follows a failover by itself"
