"""`customer-ids stack up --secure`: Kafka on SASL_SSL with ACLs and Redis on TLS with ACL
users, each role its own principal and Redis user with exactly what it needs (stack/roles.py).

The stack makes its CA and the servers' certificate, a password per user (kept in a 0600 file
in its folder; `stack env ROLE` prints a role's settings from it), the SCRAM users before
Kafka's first start, the aclfile before Redis starts, and then, as `admin`, the topics with
their settings and every role's ACLs. No role is given the right to create or delete topics.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from cryptography import x509

from customer_ids.adapters.kafka_io import ensure_topics
from customer_ids.config.settings import Settings
from customer_ids.stack.certificates import CertificateFiles
from customer_ids.stack.kafka import KafkaNode, KafkaTls
from customer_ids.stack.processes import StackError
from customer_ids.stack.redis_server import RedisNode, RedisTls
from customer_ids.stack.roles import (
    ADMIN,
    BROKER,
    CONTROLLER,
    ROLES,
    kafka_grants,
    redis_aclfile,
)

REDIS_ROLES = ("service", "api", ADMIN)
SCRAM_ITERATIONS = 8192
TopicSpecs = dict[str, dict[str, Any]]  # consumer.bootstrap.topic_specs: name -> settings


@dataclass(frozen=True)
class SecureStack:
    """The secure broker and Redis, their certificates and their users, under `home`."""

    home: Path
    cache_dir: Path
    kafka_port: int = 19492
    controller_port: int = 19493
    redis_port: int = 16479

    @property
    def certificates(self) -> CertificateFiles:
        return CertificateFiles(self.home / "tls")

    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    def passwords(self) -> dict[str, str]:
        """Each user's password: made once, kept readable by the owner alone."""
        if self.secrets_file.exists():
            known: dict[str, str] = json.loads(self.secrets_file.read_text())
            return known
        self.home.mkdir(parents=True, exist_ok=True)
        made = {user: secrets.token_urlsafe(24) for user in (ADMIN, BROKER, CONTROLLER, *ROLES)}
        self._save(made)
        return made

    def _save(self, passwords: dict[str, str]) -> None:
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(passwords, out, indent=1)

    @property
    def kafka(self) -> KafkaNode:
        passwords = self.passwords() if self.secrets_file.exists() else {}
        scram = tuple((u, p) for u, p in passwords.items() if u != CONTROLLER)
        return KafkaNode(
            state_dir=self.home,
            cache_dir=self.cache_dir,
            port=self.kafka_port,
            controller_port=self.controller_port,
            name="kafka",
            tls=KafkaTls(
                keystore=self.certificates.kafka_keystore,
                truststore=self.certificates.ca,
                users=scram,
                controller_password=passwords.get(CONTROLLER, ""),
            ),
        )

    @property
    def redis(self) -> RedisNode:
        passwords = self.passwords() if self.secrets_file.exists() else {}
        return RedisNode(
            state_dir=self.home,
            port=self.redis_port,
            name="redis",
            tls=RedisTls(
                cert=self.certificates.server_cert,
                key=self.certificates.server_key,
                ca=self.certificates.ca,
                aclfile=self.home / "redis" / "users.acl",
                admin_password=passwords.get(ADMIN, ""),
            ),
        )

    def up(self, settings: Settings, topics: TopicSpecs) -> float:
        """Start what is not running, wait for it, and provision `topics` and the ACLs."""
        started = time.monotonic()
        self.certificates.ensure()
        passwords = self.passwords()
        redis = self.redis
        assert redis.tls is not None
        redis.home.mkdir(parents=True, exist_ok=True)
        redis.tls.aclfile.write_text(
            redis_aclfile({r: passwords[r] for r in REDIS_ROLES}, settings.redis_prefix)
        )
        redis.tls.aclfile.chmod(0o600)
        redis.start()
        self.kafka.start()
        redis.wait_ready()
        redis.admin_client().acl_load()  # a running server takes the users as written now
        self.kafka.wait_ready(timeout=180)
        self.provision(settings, topics)
        return time.monotonic() - started

    def provision(self, settings: Settings, topics: TopicSpecs) -> None:
        """As admin: the service's topics with their settings, then every role's ACLs
        (creating an ACL that exists changes nothing, so this runs on every `up`)."""
        provision(self.kafka.admin_config(), settings, topics)

    def add_subscriber(self, team: str, settings: Settings) -> str:
        """A new subscriber team: its own SCRAM user and the subscriber role's rights, with
        consumer groups named after the team. Returns its password."""
        if not team.replace("-", "").replace("_", "").isalnum() or team in self.passwords():
            raise StackError(
                f"{team!r} cannot be a team name: use letters, digits, - and _, and a name "
                f"that is not already a user ({', '.join(sorted(self.passwords()))})"
            )
        password = secrets.token_urlsafe(24)
        admin = AdminClient(self.kafka.admin_config())
        _set_scram(admin, team, password)
        grants = kafka_grants("subscriber", settings, groups=(team,))
        _create_acls(admin, [b for g in grants for b in g.bindings(team)])
        self._save({**self.passwords(), team: password})
        return password

    def rotate(self, user: str, settings: Settings) -> None:
        """A new password for `user` on Kafka and Redis; connections already logged in stay
        until they reconnect, so processes are restarted with the new settings one by one."""
        passwords = self._passwords_for(user)
        new = {**passwords, user: secrets.token_urlsafe(24)}
        _set_scram(AdminClient(self.kafka.admin_config()), user, new[user])
        redis = self.redis
        assert redis.tls is not None
        client = redis.admin_client()  # logs in with the admin password before the rotation
        self._save(new)
        if user in REDIS_ROLES:
            redis.tls.aclfile.write_text(
                redis_aclfile({r: new[r] for r in REDIS_ROLES}, settings.redis_prefix)
            )
            client.acl_load()

    def renew_certificate(self) -> None:
        """A new server key and certificate from the same CA, taken up without a restart:
        Redis reloads its TLS files when they are set again, and Kafka reloads a listener's
        keystore when it is set again (dynamic broker configuration). Clients trust the CA,
        so they keep working; the controllers' own listener takes it at its next start."""
        self.certificates.renew_server()
        redis = self.redis
        assert redis.tls is not None
        client = redis.admin_client()
        client.config_set("tls-cert-file", str(redis.tls.cert))
        client.config_set("tls-key-file", str(redis.tls.key))
        node = self.kafka
        keystore = ConfigEntry(
            "listener.name.secure.ssl.keystore.location",
            str(self.certificates.kafka_keystore),
            incremental_operation=AlterConfigOpType.SET,
        )
        resource = ConfigResource(
            ConfigResource.Type.BROKER, str(node.node_id), incremental_configs=[keystore]
        )
        admin = AdminClient(node.admin_config())
        for future in admin.incremental_alter_configs([resource]).values():
            future.result()
        # The broker applies the change when its metadata log reaches it: wait to see it.
        wanted = self.certificates.server_serial()
        for port in (self.kafka_port, self.redis_port):
            deadline = time.monotonic() + 60
            while served_serial(port) != wanted:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"the server on port {port} still presents the old certificate"
                    )
                time.sleep(0.5)

    def _passwords_for(self, user: str) -> dict[str, str]:
        """Every password, once `user` is known to be a role or team (not the servers' own
        users); StackError naming the users otherwise."""
        passwords = self.passwords()
        if user not in passwords or user in (BROKER, CONTROLLER):
            users = sorted(set(passwords) - {BROKER, CONTROLLER})
            raise StackError(f"no role or team {user!r}; use one of {', '.join(users)}")
        return passwords

    def env_lines(self, role: str, settings: Settings) -> list[str]:
        """The export lines a process of `role` runs with."""
        passwords = self._passwords_for(role)
        redis_url = self.redis.url_as(role, passwords[role]) if role in REDIS_ROLES else None
        return role_lines(
            role, passwords[role], self.kafka.bootstrap, self.certificates.ca, redis_url, settings
        )

    def down(self) -> list[str]:
        stopped = []
        if self.kafka.stop():
            stopped.append("secure kafka")
        if self.redis.stop():
            stopped.append("secure redis")
        return stopped


def provision(admin_config: dict[str, Any], settings: Settings, topics: TopicSpecs) -> None:
    """As admin: the topics with their settings, then every role's ACLs (an ACL that exists
    already changes nothing, so this is safe to repeat)."""
    ensure_topics(admin_config["bootstrap.servers"], topics, client=admin_config)
    bindings = [
        binding
        for role in ROLES
        for grant in kafka_grants(role, settings)
        for binding in grant.bindings(role)
    ]
    _create_acls(AdminClient(admin_config), bindings)


def served_serial(port: int) -> int:
    """The serial number of the certificate the server on `port` presents now."""
    pem = ssl.get_server_certificate(("localhost", port), timeout=10)
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def role_lines(
    role: str,
    password: str,
    bootstrap: str,
    ca: Path,
    redis_url: str | None,
    settings: Settings,
) -> list[str]:
    """The export lines of one role: Kafka on SASL_SSL as `role`, the names its ACLs were made
    for, and Redis where the role has a user."""
    lines = [
        f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}",
        "export KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        "export KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
        f"export KAFKA_SASL_USERNAME={role}",
        f"export KAFKA_SASL_PASSWORD={password}",
        f"export KAFKA_SSL_CA_LOCATION={ca}",
        *(f"export {env}={value}" for env, value in _topic_settings(settings)),
    ]
    if redis_url is not None:
        lines += [
            f"export REDIS_URL={redis_url}",
            f"export REDIS_SSL_CA_LOCATION={ca}",
            f"export CUSTOMER_IDS_REDIS_PREFIX={settings.redis_prefix}",
        ]
    return lines


def _topic_settings(settings: Settings) -> list[tuple[str, str]]:
    """The names the ACLs were made for: a process must use the same ones."""
    return [
        ("CUSTOMER_IDS_INPUT_TOPIC", settings.input_topic),
        ("CUSTOMER_IDS_OUTPUT_TOPIC", settings.output_topic),
        ("CUSTOMER_IDS_DLQ_TOPIC", settings.dlq_topic),
        ("CUSTOMER_IDS_WATERMARK_TOPIC", settings.watermark_topic),
        ("CUSTOMER_IDS_SEARCH_TOPIC", settings.search_topic),
        ("CUSTOMER_IDS_ERASURE_TOPIC", settings.erasure_topic),
        ("CUSTOMER_IDS_MERGE_TOPIC", settings.merge_topic),
        ("CUSTOMER_IDS_GROUP_ID", settings.group_id),
    ]


def _set_scram(admin: AdminClient, user: str, password: str) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result()


def _create_acls(admin: AdminClient, bindings: list[AclBinding]) -> None:
    for binding, future in admin.create_acls(bindings, request_timeout=60).items():
        try:
            future.result()
        except KafkaException as exc:
            raise StackError(f"Kafka refused the ACL {binding}: {exc.args[0].str()}") from None
