"""`customer-ids stack compose-files DIR`: what docker-compose.yml's `secure` profile mounts,
made once by its `secure-init` container into a volume: the CA and the servers' certificate
(for the compose service names), a password per user, the broker's server.properties and SCRAM
users, Redis's aclfile, and one folder per role with its settings and the CA.

Each container mounts only its own folder (a volume subpath) at /secure, so a process sees its
own role's password and no other's. File paths inside are those the containers see.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import uuid
from pathlib import Path

from customer_ids.config.settings import Settings
from customer_ids.stack.certificates import CertificateFiles
from customer_ids.stack.kafka import KafkaNode, KafkaTls
from customer_ids.stack.roles import ADMIN, BROKER, CONTROLLER, ROLES, redis_aclfile
from customer_ids.stack.secure import REDIS_ROLES, role_lines

KAFKA_HOST, KAFKA_PORT, CONTROLLER_PORT = "kafka-secure", 9094, 9095
REDIS_HOST, REDIS_PORT = "redis-secure", 6380
MOUNT = Path("/secure")  # where every container sees its own folder
# The users the images run as: apache/kafka's appuser, redis's redis, our image's nobody.
OWNERS = {"kafka": 1000, "redis": 999}
APP_USER = 65534


def write_compose_files(out: Path, settings: Settings) -> list[str]:
    """Write every folder under `out` unless they exist (a restart keeps the passwords and
    the CA); the folders written."""
    if (out / "done").exists():
        return []
    certs = CertificateFiles(out / "ca", names=(KAFKA_HOST, REDIS_HOST, "localhost"))
    certs.ensure()
    passwords = {u: secrets.token_urlsafe(24) for u in (ADMIN, BROKER, CONTROLLER, *ROLES)}
    _private(out / "ca" / "secrets.json", json.dumps(passwords, indent=1))
    _kafka(out / "kafka", certs, passwords)
    redis = out / "redis"
    redis.mkdir(parents=True, exist_ok=True)
    for name, source in (("server.pem", certs.server_cert), ("server.key", certs.server_key)):
        shutil.copyfile(source, redis / name)
    shutil.copyfile(certs.ca, redis / "ca.pem")
    _private(
        redis / "users.acl",
        redis_aclfile({r: passwords[r] for r in REDIS_ROLES}, settings.redis_prefix),
    )
    for role in (*ROLES, ADMIN):
        folder = out / "roles" / role
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(certs.ca, folder / "ca.pem")
        redis_url = (
            f"rediss://{role}:{passwords[role]}@{REDIS_HOST}:{REDIS_PORT}/0"
            if role in REDIS_ROLES
            else None
        )
        lines = role_lines(
            role,
            passwords[role],
            f"{KAFKA_HOST}:{KAFKA_PORT}",
            MOUNT / "ca.pem",
            redis_url,
            settings,
        )
        _private(folder / "role.env", "\n".join(lines) + "\n")
        _own(folder, APP_USER)
    for name, uid in OWNERS.items():
        _own(out / name, uid)
    (out / "done").write_text("written once; remove the volume to make new ones\n")
    return ["ca", "kafka", "redis", "roles"]


def _kafka(folder: Path, certs: CertificateFiles, passwords: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(certs.kafka_keystore, folder / "keystore.pem")
    shutil.copyfile(certs.ca, folder / "ca.pem")
    node = KafkaNode(
        state_dir=MOUNT,
        cache_dir=MOUNT,
        port=KAFKA_PORT,
        controller_port=CONTROLLER_PORT,
        tls=KafkaTls(
            keystore=MOUNT / "keystore.pem",
            truststore=MOUNT / "ca.pem",
            users=tuple((u, p) for u, p in passwords.items() if u != CONTROLLER),
            controller_password=passwords[CONTROLLER],
            bind_host="0.0.0.0",  # inside its container, on the compose network
            host=KAFKA_HOST,
        ),
    )
    _private(folder / "server.properties", node.config_text(Path("/var/lib/kafka/data")))
    # Words without spaces (passwords are URL-safe base64): the start script passes them on
    # with `set -f`, so the brackets are not taken for file patterns.
    _private(folder / "format-args", "\n".join(node.scram_arguments()) + "\n")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    (folder / "cluster-id").write_text(cluster_id + "\n")
    # The healthcheck's client, as the broker's own super user.
    _private(
        folder / "client.properties",
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER}" password="{passwords[BROKER]}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={MOUNT / 'ca.pem'}\n",
    )


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _own(folder: Path, uid: int) -> None:
    """Hand a folder to the user its container runs as (when run as root, in secure-init)."""
    if os.geteuid() != 0:
        return
    for path in (folder, *folder.rglob("*")):
        os.chown(path, uid, uid)
