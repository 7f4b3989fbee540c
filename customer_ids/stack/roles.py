"""Who may do what on the secure stack: each role's Kafka ACLs and Redis ACL rule, derived from
the topic, group and key names in Settings, so a renamed topic moves its grants with it.

Roles (README, "Security: roles"):
- service: reads the input and erasure topics, writes the output, dead-letter, watermark and
  search topics, reads them back (recovery), its group and transactional ids; in Redis, the
  commands it uses on keys under its prefix;
- api: reads the output topic, writes the input topic (a number on request); Redis read-only;
- auditor: reads the output and watermark topics with its own group; no Redis;
- producer (upstream services): writes the input topic; nothing else;
- subscriber (sales, support, marketing; one user per team): reads the output topic with its
  team's groups; nothing else, not the input topic, which holds personal data.
- admin (operators: topic creation, ACLs, `import`, `forget`, `dlq replay`, `search-reindex`):
  super user on Kafka, every command on Redis. No process of the service runs as admin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from customer_ids.config.settings import Settings

ROLES = ("service", "api", "auditor", "producer", "subscriber")
ADMIN = "admin"
# Brokers talk to each other as `broker`; controllers to each other as `controller` (PLAIN on
# their own listener: SCRAM is not supported between controllers).
BROKER = "broker"
CONTROLLER = "controller"
SUPER_USERS = (ADMIN, BROKER, CONTROLLER)

# Every group a reader of whole topics (adapters.log_reader) names itself with, and the
# service's reader of the claims (consumer.claims): assign() only, never a member.
READER_GROUPS = "customer-ids-reader-"
CLAIMS_GROUPS = "customer-ids-claims-"

# The commands the service sends, directly, in pipelines and from its Lua scripts (ACLs check
# the commands a script calls and the keys it names), and redis-py's Lock scripts.
SERVICE_COMMANDS = (
    "ping get set del unlink exists mget incr incrby pexpire pttl hexists "
    "hget hset hsetnx hdel hgetall hlen hmget sadd srem sunion smembers scan "
    "info wait evalsha evalsha_ro eval script|load script|exists client|setname"
)
# The API reads; it writes nothing in Redis.
API_COMMANDS = (
    "ping get mget exists hget hmget hgetall hlen sunion smembers scan info evalsha_ro script|load "
    "client|setname"
)


class Op(Enum):
    READ = AclOperation.READ
    WRITE = AclOperation.WRITE
    DESCRIBE = AclOperation.DESCRIBE
    DESCRIBE_CONFIGS = AclOperation.DESCRIBE_CONFIGS


@dataclass(frozen=True)
class Grant:
    """Operations on one resource (a name, or a prefix when `prefixed`)."""

    resource: ResourceType
    name: str
    ops: tuple[Op, ...]
    prefixed: bool = False

    def bindings(self, user: str) -> list[AclBinding]:
        pattern = ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL
        return [
            AclBinding(
                self.resource,
                self.name,
                pattern,
                f"User:{user}",
                "*",
                op.value,
                AclPermissionType.ALLOW,
            )
            for op in self.ops
        ]


def _topic(name: str, *ops: Op) -> Grant:
    return Grant(ResourceType.TOPIC, name, (Op.DESCRIBE, *ops))


def _groups(prefix: str) -> Grant:
    return Grant(ResourceType.GROUP, prefix, (Op.READ, Op.DESCRIBE), prefixed=True)


def kafka_grants(role: str, settings: Settings, groups: Iterable[str] = ()) -> list[Grant]:
    """What `role` may do on Kafka; `groups` names a subscriber team's group prefixes."""
    s = settings
    if role == "service":
        own = (s.output_topic, s.dlq_topic, s.watermark_topic, s.search_topic)
        return [
            _topic(s.input_topic, Op.READ),
            _topic(s.erasure_topic, Op.READ, Op.DESCRIBE_CONFIGS),
            _topic(s.merge_topic, Op.READ, Op.DESCRIBE_CONFIGS),
            *(_topic(name, Op.READ, Op.WRITE, Op.DESCRIBE_CONFIGS) for name in own),
            Grant(ResourceType.GROUP, s.group_id, (Op.READ, Op.DESCRIBE)),
            _groups(READER_GROUPS),
            _groups(CLAIMS_GROUPS),
            # Transactional ids begin with the group id: the default customer-ids-<host>
            # (workers <id>-w<n>) and the import's <group>-import.
            Grant(
                ResourceType.TRANSACTIONAL_ID,
                s.group_id,
                (Op.WRITE, Op.DESCRIBE),
                prefixed=True,
            ),
        ]
    if role == "api":
        return [
            _topic(s.output_topic, Op.READ),
            _topic(s.input_topic, Op.WRITE),
            _groups(READER_GROUPS),
        ]
    if role == "auditor":
        return [
            _topic(s.output_topic, Op.READ),
            _topic(s.watermark_topic, Op.READ),
            _groups("customer-ids-audit"),
            _groups(READER_GROUPS),
        ]
    if role == "producer":  # upstream systems: new customers, and a CRM's merges
        return [_topic(s.input_topic, Op.WRITE), _topic(s.merge_topic, Op.WRITE)]
    if role == "subscriber":
        return [
            _topic(s.output_topic, Op.READ),
            *(_groups(g) for g in groups or ("customer-ids-tail", "customer-ids-watch")),
        ]
    raise ValueError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")


def redis_rule(role: str, password: str, prefix: str) -> str | None:
    """The aclfile line of `role`, its password kept as a SHA-256; None: no Redis user."""
    secret = "#" + hashlib.sha256(password.encode()).hexdigest()
    if role == ADMIN:
        return f"user {ADMIN} on {secret} ~* &* +@all"
    if role == "service":
        allowed = " ".join(f"+{c}" for c in SERVICE_COMMANDS.split())
        return f"user service on {secret} ~{prefix}* resetchannels -@all {allowed}"
    if role == "api":
        allowed = " ".join(f"+{c}" for c in API_COMMANDS.split())
        return f"user api on {secret} %R~{prefix}* resetchannels -@all {allowed}"
    return None


def redis_aclfile(passwords: dict[str, str], prefix: str) -> str:
    """The whole aclfile: the default user off (no access without a user and password)."""
    lines = ["user default off resetpass resetkeys resetchannels -@all"]
    for role, password in sorted(passwords.items()):
        rule = redis_rule(role, password, prefix)
        if rule:
            lines.append(rule)
    return "\n".join(lines) + "\n"
