"""Three (or more) KRaft nodes on loopback, each broker and controller, for `stack up --brokers
3` and the cluster fault tests: what production runs (replication factor 3, min.insync.replicas
2), small enough for two cores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from customer_ids.stack.kafka import KafkaNode
from customer_ids.stack.processes import StackError


@dataclass(frozen=True)
class KafkaCluster:
    nodes: tuple[KafkaNode, ...]

    @classmethod
    def on_ports(
        cls, state_dir: Path, cache_dir: Path, ports: list[tuple[int, int]], name: str = "kafka"
    ) -> KafkaCluster:
        """One node per (client port, controller port); node i's folder is <name>-<i>."""
        voters = tuple((i + 1, controller) for i, (_, controller) in enumerate(ports))
        return cls(
            tuple(
                KafkaNode(
                    state_dir=state_dir,
                    cache_dir=cache_dir,
                    port=port,
                    controller_port=controller,
                    node_id=i + 1,
                    name=f"{name}-{i + 1}",
                    voters=voters,
                )
                for i, (port, controller) in enumerate(ports)
            )
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self) -> None:
        """Start every node that is not running; a new cluster is formatted with one id."""
        first = self.nodes[0]
        first.fetch_jars()
        formatted = [(n.home / "data" / "meta.properties").exists() for n in self.nodes]
        if any(formatted) and not all(formatted):
            raise StackError(
                "some nodes of the Kafka cluster have data and some do not; stop the stack and "
                f"remove the folders {', '.join(str(n.home) for n in self.nodes)} to start anew"
            )
        cluster_id = None if all(formatted) else first.new_cluster_id()
        for node in self.nodes:
            node.start(cluster_id)

    def wait_ready(self, timeout: float = 180.0) -> None:
        for node in self.nodes:
            node.wait_ready(timeout, brokers=len(self.nodes))

    def running_pids(self) -> list[int | None]:
        return [n.running_pid() for n in self.nodes]

    def stop(self) -> bool:
        stopped = [node.stop() for node in self.nodes]
        return any(stopped)
