"""Least privilege as data: each role's Kafka grants and Redis rule, the stack's certificates,
and the security settings' checks (the secure stack itself: tests/e2e/test_secure_stack.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourceType  # type: ignore[attr-defined]
from cryptography import x509

from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError
from customer_ids.stack.certificates import CertificateFiles
from customer_ids.stack.roles import ROLES, kafka_grants, redis_aclfile

SETTINGS = Settings.from_env({})


def rights(role: str) -> set[tuple[str, str]]:
    """(resource name, operation) pairs a role holds on topics."""
    return {
        (binding.name, str(getattr(binding.operation, "name", binding.operation)))
        for grant in kafka_grants(role, SETTINGS)
        if grant.resource == ResourceType.TOPIC
        for binding in grant.bindings(role)
    }


def test_no_role_may_create_alter_or_delete_anything_or_touch_the_cluster() -> None:
    for role in ROLES:
        for grant in kafka_grants(role, SETTINGS):
            assert grant.resource != ResourceType.BROKER, role  # the cluster resource
            for binding in grant.bindings(role):
                assert binding.operation not in {
                    AclOperation.CREATE,
                    AclOperation.DELETE,
                    AclOperation.ALTER,
                    AclOperation.ALTER_CONFIGS,
                    AclOperation.ALL,
                }, (role, binding)
                assert binding.principal == f"User:{role}"


def test_only_the_service_writes_the_record_and_no_subscriber_reads_personal_data() -> None:
    output, source = SETTINGS.output_topic, SETTINGS.input_topic
    writers = {role for role in ROLES if (output, "WRITE") in rights(role)}
    assert writers == {"service"}
    readers_of_input = {role for role in ROLES if (source, "READ") in rights(role)}
    assert readers_of_input == {"service"}
    merges = SETTINGS.merge_topic
    assert rights("producer") == {
        (source, "WRITE"),
        (source, "DESCRIBE"),
        (merges, "WRITE"),
        (merges, "DESCRIBE"),
    }
    assert {op for _, op in rights("auditor")} == {"READ", "DESCRIBE"}
    assert {op for _, op in rights("subscriber")} == {"READ", "DESCRIBE"}


def test_a_subscriber_team_gets_groups_named_after_it() -> None:
    grants = kafka_grants("subscriber", SETTINGS, groups=("marketing",))
    groups = [g for g in grants if g.resource == ResourceType.GROUP]
    assert [(g.name, g.prefixed) for g in groups] == [("marketing", True)]


def test_renamed_topics_move_their_grants() -> None:
    renamed = Settings.from_env({"CUSTOMER_IDS_OUTPUT_TOPIC": "crm.numbers"})
    names = {g.name for g in kafka_grants("subscriber", renamed)}
    assert "crm.numbers" in names and SETTINGS.output_topic not in names


def test_redis_users_the_default_off_the_service_under_its_prefix_the_api_read_only() -> None:
    aclfile = redis_aclfile({"service": "s3cret", "api": "r3ad", "admin": "4dmin"}, "cid:")
    rules = {line.split()[1]: line for line in aclfile.splitlines()}
    assert rules["default"].startswith("user default off")
    assert " ~cid:* " in rules["service"] and " -@all " in rules["service"]
    assert " %R~cid:* " in rules["api"]
    for dangerous in ("+flushall", "+config", "+keys", "+acl", "+@all", "+set ", "+del "):
        assert dangerous not in rules["api"] + " ", dangerous
    for dangerous in ("+flushall", "+flushdb", "+config", "+keys", "+acl", "+@all", "+shutdown"):
        assert dangerous not in rules["service"], dangerous
    assert "s3cret" not in aclfile and "r3ad" not in aclfile  # kept as SHA-256 only
    assert set(rules) == {"default", "service", "api", "admin"}


def test_the_certificates_name_localhost_and_keep_their_keys_private(tmp_path: Path) -> None:
    files = CertificateFiles(tmp_path / "tls")
    files.ensure()
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    for key in (files.ca_key, files.server_key, files.kafka_keystore):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    before = server.serial_number
    files.renew_server()
    renewed = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    assert renewed.serial_number != before
    renewed.verify_directly_issued_by(ca)


def test_security_settings_say_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"REDIS_SSL_CA_LOCATION.*no file at"):
        Settings.from_env({"REDIS_SSL_CA_LOCATION": str(tmp_path / "missing.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="does not use TLS: start it with rediss://"):
        Settings.from_env({"REDIS_SSL_CA_LOCATION": str(ca)})
    with pytest.raises(ConfigError, match="set KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(ConfigError, match="KAFKA_SECURITY_PROTOCOL='TLS' is not allowed"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "TLS"})
    shown = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "service",
            "KAFKA_SASL_PASSWORD": "k4fka-pw",
            "REDIS_URL": "rediss://service:r3dis-pw@localhost:16479/0",
            "REDIS_SSL_CA_LOCATION": str(ca),
        }
    ).masked()
    assert shown["kafka_security_protocol"] == "SASL_SSL"
    assert shown["kafka_sasl_password"] == "***"
    assert "k4fka-pw" not in str(shown) and "r3dis-pw" not in str(shown)
