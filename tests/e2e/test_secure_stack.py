"""Least privilege with TLS (issue 26), on the secure stack `customer-ids stack up --secure`
makes: Kafka on SASL_SSL with SCRAM users and ACLs, Redis on TLS with ACL users.

Each role does its job with its own settings (`stack env ROLE`) and nothing else; clients
without TLS or credentials are refused; a killed service and a wiped Redis keep the invariants.
The test process itself reads and writes as `admin`, like an operator's tools.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumer.bootstrap import topic_specs
from customer_ids.adapters.reachability import require_kafka, require_redis
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError, UnavailableError
from customer_ids.stack.local import default_cache_dir
from customer_ids.stack.secure import SecureStack, served_serial
from tests.helpers.api import TOKENS, ApiProcess, bearer
from tests.helpers.events import make_events, send, send_raw
from tests.helpers.java import subscribe
from tests.helpers.own_redis import free_port
from tests.helpers.service import Scenario, ServiceProcess
from tests.helpers.services import Endpoints
from tests.helpers.verify import assert_invariants, wait_for_outputs

KAFKA_ENV = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    """A secure broker and Redis of the test's own; the test process acts as admin."""
    stack = SecureStack(
        tmp_path_factory.mktemp("state") / "secure",
        default_cache_dir(),
        kafka_port=free_port(),
        controller_port=free_port(),
        redis_port=free_port(),
    )
    with pytest.MonkeyPatch.context() as patch:
        try:
            defaults = Settings.from_env({})
            stack.up(defaults, topic_specs(defaults))
            for line in stack.env_lines("admin", defaults):
                key, value = line.removeprefix("export ").split("=", 1)
                if key in KAFKA_ENV:
                    patch.setenv(key, value)
            yield stack
        finally:
            stack.down()


def stack_cli(stack: SecureStack, scenario: Scenario, *args: str) -> dict[str, str]:
    """`customer-ids stack ARGS` on this stack; the export lines it prints, as a mapping."""
    env = scenario.env(
        CUSTOMER_IDS_STACK_DIR=str(stack.home.parent),
        CUSTOMER_IDS_STACK_SECURE_KAFKA_PORT=str(stack.kafka_port),
        CUSTOMER_IDS_STACK_SECURE_CONTROLLER_PORT=str(stack.controller_port),
        CUSTOMER_IDS_STACK_SECURE_REDIS_PORT=str(stack.redis_port),
    )
    done = cli(env, "stack", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("export ")]
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


def role_env(stack: SecureStack, role: str, scenario: Scenario) -> dict[str, str]:
    """What `customer-ids stack env ROLE` prints for this scenario's names."""
    lines = stack.env_lines(role, Settings.from_env(scenario.env()))
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


@pytest.fixture
def scenario(secure: SecureStack) -> Scenario:
    """Topics, ACLs and Redis users for this test's names, made by `up` as admin."""
    scenario = Scenario(Endpoints(secure.kafka.bootstrap, "rediss://admin@localhost:0/0", "secure"))
    settings = Settings.from_env(scenario.env())
    secure.up(settings, topic_specs(settings))
    return scenario


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "customer_ids.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kafka_as(env: dict[str, str], **extra: Any) -> dict[str, Any]:
    """librdkafka settings of a role's client."""
    return {
        "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": env["KAFKA_SECURITY_PROTOCOL"],
        "sasl.mechanism": env["KAFKA_SASL_MECHANISM"],
        "sasl.username": env["KAFKA_SASL_USERNAME"],
        "sasl.password": env["KAFKA_SASL_PASSWORD"],
        "ssl.ca.location": env["KAFKA_SSL_CA_LOCATION"],
        **extra,
    }


def redis_as(env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(
        env["REDIS_URL"], ssl_ca_certs=env["REDIS_SSL_CA_LOCATION"], socket_timeout=10
    )


def write_refused(env: dict[str, str], topic: str) -> KafkaError:
    """The error a role's producer gets writing one record to `topic`."""
    errors: list[KafkaError | None] = []
    producer = Producer(kafka_as(env, **{"message.timeout.ms": 30000}))
    producer.produce(topic, b"forged", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(60)
    assert errors and errors[0] is not None, f"{env['KAFKA_SASL_USERNAME']} wrote to {topic}"
    return errors[0]


def read_refused(env: dict[str, str], topic: str, group: str) -> KafkaError:
    """The error a role's consumer gets reading `topic` from the beginning."""
    consumer = Consumer(kafka_as(env, **{"group.id": group, "auto.offset.reset": "earliest"}))
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None:
                continue
            error = message.error()
            assert error is not None, f"{env['KAFKA_SASL_USERNAME']} read {topic}"
            if error.code() != KafkaError._PARTITION_EOF:
                return error
        raise AssertionError(f"no answer reading {topic} as {env['KAFKA_SASL_USERNAME']}")
    finally:
        consumer.close()


def denied_redis_users(stack: SecureStack) -> list[str]:
    """What ACL LOG holds: each command or key a user was refused, since the last reset."""
    entries = stack.redis.admin_client().acl_log()
    return [f"{e['username']}: {e['reason']} {e['object']}" for e in entries]


def test_clients_without_tls_or_credentials_are_refused(secure: SecureStack) -> None:
    scenario = Scenario(Endpoints(secure.kafka.bootstrap, "", "secure"))
    service = role_env(secure, "service", scenario)
    bootstrap = service["KAFKA_BOOTSTRAP_SERVERS"]
    ca = service["KAFKA_SSL_CA_LOCATION"]
    no_tls = {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}
    with pytest.MonkeyPatch.context() as patch:
        for key in KAFKA_ENV:
            patch.setenv(key, service[key])
        require_kafka(bootstrap, 60)  # the role's own settings reach it
        for key in KAFKA_ENV:
            patch.delenv(key, raising=False)
        with pytest.raises(UnavailableError):  # plain text on a TLS listener
            require_kafka(bootstrap, 5)
        patch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
        patch.setenv("KAFKA_SSL_CA_LOCATION", ca)
        with pytest.raises(UnavailableError):  # TLS without a SASL login
            require_kafka(bootstrap, 5)
        for key, value in {**no_tls, "KAFKA_SASL_USERNAME": "service"}.items():
            patch.setenv(key, value)
        patch.setenv("KAFKA_SASL_PASSWORD", service["KAFKA_SASL_PASSWORD"])
        with pytest.raises(UnavailableError):  # right password, no TLS
            require_kafka(bootstrap, 5)
        patch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        patch.setenv("KAFKA_SASL_PASSWORD", "wrong-password")
        with pytest.raises(ConfigError, match="refused us"):
            require_kafka(bootstrap, 10)

    url = service["REDIS_URL"]
    require_redis(url, 10, tls={"ssl_ca_certs": ca})  # the role's own settings reach it
    plain = "redis://" + url.removeprefix("rediss://").rpartition("@")[2]
    with pytest.raises(UnavailableError):  # no TLS
        require_redis(plain, 3)
    anonymous = "rediss://" + url.rpartition("@")[2]
    with pytest.raises(ConfigError, match="requires a user and password"):
        require_redis(anonymous, 5, tls={"ssl_ca_certs": ca})
    wrong = url.replace(service["KAFKA_SASL_PASSWORD"], "wrong-password")
    with pytest.raises(ConfigError, match="refused us"):
        require_redis(wrong, 5, tls={"ssl_ca_certs": ca})
    with pytest.raises(UnavailableError):  # a certificate no trusted CA signed
        require_redis(url, 5)

    # The service's own start-up says the same, and shows no secret.
    refused = cli(
        scenario.env(**{**service, "REDIS_URL": anonymous, "CUSTOMER_IDS_STARTUP_TIMEOUT_S": "20"}),
        "serve",
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert service["KAFKA_SASL_PASSWORD"] not in refused.stdout + refused.stderr


def test_each_role_does_its_job_with_its_own_settings(
    secure: SecureStack, scenario: Scenario, tmp_path: Path
) -> None:
    env = {role: role_env(secure, role, scenario) for role in ("service", "producer", "api")}
    secure.redis.admin_client().acl_log_reset()
    assert stack_cli(secure, scenario, "env", "service") == env["service"]
    produced = cli(scenario.env(**env["producer"]), "produce", "--count", "300", "--seed", "26")
    assert produced.returncode == 0, produced.stderr[-3000:]
    send_raw(scenario, [b"not avro"])  # as admin: one dead letter
    service = ServiceProcess(scenario, tmp_path, "svc", **env["service"]).start()
    try:
        committed = wait_for_outputs(
            scenario.endpoints.bootstrap,
            scenario.output_topic,
            300,
            dlq_topic=scenario.dlq_topic,
            dead_letters=1,
        )
        assert_invariants(make_events(300, seed=26), committed)
        letters = cli(scenario.env(**env["service"]), "dlq", "list", "--json")
        assert letters.returncode == 0, letters.stderr[-3000:]
        assert len(letters.stdout.splitlines()) == 1
        numbers = {o.customer_key: o.customer_number for o in committed.outputs}

        subscriber = role_env(secure, "subscriber", scenario)
        tail = cli(
            scenario.env(**subscriber),
            *("tail", "--group", f"customer-ids-tail-{scenario.tag}", "--count", "300"),
            *("--idle-timeout", "60"),
        )
        assert tail.returncode == 0, tail.stderr[-3000:]
        assert len(tail.stdout.splitlines()) == 300
        watch = cli(
            scenario.env(**subscriber),
            *("watch", "--group", f"customer-ids-watch-{scenario.tag}", "--idle-timeout", "5"),
        )
        assert watch.returncode == 0, watch.stderr[-3000:]

        audit = cli(
            scenario.env(**role_env(secure, "auditor", scenario)),
            *("audit", "--group", f"customer-ids-audit-{scenario.tag}", "--until-caught-up"),
            *("--metrics-port", "0"),
        )
        assert audit.returncode == 0, audit.stderr[-3000:]

        # The API reads Redis (a customer), the output topic (a number: no reverse index) and
        # writes the input topic (a number on request).
        api = ApiProcess(scenario, tmp_path, **env["api"], CUSTOMER_IDS_REVERSE_INDEX="off")
        api.start()
        try:
            key, number = next(iter(numbers.items()))
            assert api_call(api, "get", f"/v1/customers/{key}")["customer_number"] == number
            owner = api_call(api, "get", f"/v1/numbers/{number}")["owner"]
            assert f"{owner['source_system']}/{owner['customer_id']}" == key
            requested = api_call(api, "post", "/v1/customers", json=new_customer("secure-1"))
            assert requested["customer_number"] not in numbers.values()
        finally:
            api.stop()
    finally:
        service.kill()
    # Every command the service and the API sent was within their rights.
    assert denied_redis_users(secure) == []
    for role, role_settings in env.items():
        log = (service.log() if role == "service" else "") + produced.stderr
        assert role_settings["KAFKA_SASL_PASSWORD"] not in log


def api_call(api: ApiProcess, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    token = TOKENS.writer if method == "post" else TOKENS.reader
    answer = httpx.request(method, api.url + path, headers=bearer(token), timeout=120, **kwargs)
    assert answer.status_code in (200, 201), answer.text
    body: dict[str, Any] = answer.json()
    return body


def new_customer(customer_id: str) -> dict[str, str]:
    return {
        "source_system": "signup",
        "customer_id": customer_id,
        "customer_type": "INDIVIDUAL",
        "country_code": "DE",
        "email": f"{customer_id}@example.org",
    }


def test_each_role_is_refused_outside_its_scope(secure: SecureStack, scenario: Scenario) -> None:
    roles = ("service", "api", "auditor", "producer", "subscriber")
    env = {role: role_env(secure, role, scenario) for role in roles}
    send(scenario, make_events(5, seed=3))  # as admin: something to read
    refused_topic = {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    refused_read = refused_topic | {KafkaError.GROUP_AUTHORIZATION_FAILED}

    # Forged assignments: only the service writes the output topic.
    for role in ("producer", "subscriber", "auditor", "api"):
        assert write_refused(env[role], scenario.output_topic).code() in refused_topic, role
    assert write_refused(env["auditor"], scenario.watermark_topic).code() in refused_topic
    # The input topic holds personal data: neither upstream producers nor subscribers read it.
    subscriber_group = f"customer-ids-tail-{scenario.tag}"
    for role, group in (("producer", "any"), ("subscriber", subscriber_group)):
        error = read_refused(env[role], scenario.input_topic, group)
        assert error.code() in refused_read, (role, error)

    # The service may not create an arbitrary topic, nor delete one.
    admin = AdminClient(kafka_as(env["service"]))
    created = admin.create_topics([NewTopic(f"t-{scenario.tag}.anything", 1, 1)])
    deleted = admin.delete_topics([scenario.output_topic])
    for future in (*created.values(), *deleted.values()):
        with pytest.raises(KafkaException) as caught:
            future.result(60)
        assert caught.value.args[0].code() in {
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
            KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        }

    # Redis: the service only under its prefix and only its commands; the API reads.
    service = redis_as(env["service"])
    prefix = scenario.redis_prefix
    service.set(f"{prefix}probe", "1")
    for command in (
        ("FLUSHALL",),
        ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"),
        ("SET", "elsewhere:key", "1"),
        ("GET", "elsewhere:key"),
        ("KEYS", "*"),
        ("ACL", "LIST"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            service.execute_command(*command)  # type: ignore[no-untyped-call]
    api = redis_as(env["api"])
    assert api.get(f"{prefix}probe") == b"1"
    for command in (("SET", f"{prefix}probe", "2"), ("DEL", f"{prefix}probe"), ("FLUSHALL",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            api.execute_command(*command)  # type: ignore[no-untyped-call]
    assert secure.redis.admin_client().get(f"{prefix}probe") == b"1"
    for role in ("auditor", "producer", "subscriber"):
        assert "REDIS_URL" not in env[role]


def test_a_killed_service_and_a_wiped_redis_keep_the_invariants(
    secure: SecureStack, scenario: Scenario, tmp_path: Path
) -> None:
    env = role_env(secure, "service", scenario)
    first, second = make_events(600, seed=61), make_events(400, seed=62)
    secure.redis.admin_client().acl_log_reset()
    send(scenario, first)
    service = ServiceProcess(scenario, tmp_path, "svc", **env).start()
    try:
        wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 150)
        service.kill()  # SIGKILL, mid-stream
        service = ServiceProcess(scenario, tmp_path, "svc2", **env).start()
        wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 600)
        secure.redis.admin_client().flushall()  # Redis wiped: rebuilt from the log
        send(scenario, second)
        committed = wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 1000)
    finally:
        service.kill()
    assert_invariants(first + second, committed)
    assert "redis_state_rebuilt_from_kafka" in service.log()
    assert denied_redis_users(secure) == []


def test_a_team_is_added_a_password_rotated_and_the_certificate_renewed(
    secure: SecureStack, scenario: Scenario
) -> None:
    send(scenario, make_events(1, seed=9))  # as admin: a record to find, as if assigned
    send_raw(scenario, [b"x"])
    team = stack_cli(secure, scenario, "add-subscriber", f"team{scenario.tag}")
    assert team["KAFKA_SASL_USERNAME"] == f"team{scenario.tag}"
    group = f"team{scenario.tag}-reporting"
    error = read_refused(team, scenario.input_topic, group)  # its rights: the output only
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert (
        write_refused(team, scenario.output_topic).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    )

    old = role_env(secure, "service", scenario)
    new = stack_cli(secure, scenario, "rotate", "service")
    assert new["KAFKA_SASL_PASSWORD"] != old["KAFKA_SASL_PASSWORD"]
    with pytest.MonkeyPatch.context() as patch:
        for key in KAFKA_ENV:
            patch.setenv(key, old[key])
        with pytest.raises(ConfigError, match="refused us"):
            require_kafka(old["KAFKA_BOOTSTRAP_SERVERS"], 20)
        for key in KAFKA_ENV:
            patch.setenv(key, new[key])
        require_kafka(new["KAFKA_BOOTSTRAP_SERVERS"], 60)
    ca = {"ssl_ca_certs": new["REDIS_SSL_CA_LOCATION"]}
    with pytest.raises(ConfigError, match="refused us"):
        require_redis(old["REDIS_URL"], 10, tls=ca)
    require_redis(new["REDIS_URL"], 10, tls=ca)

    served = (served_serial(secure.kafka_port), served_serial(secure.redis_port))
    stack_cli(secure, scenario, "renew-certificate")
    renewed = (served_serial(secure.kafka_port), served_serial(secure.redis_port))
    assert renewed[0] != served[0] and renewed[1] != served[1]
    # Clients trust the CA, not the certificate: they keep connecting.
    with pytest.MonkeyPatch.context() as patch:
        for key in KAFKA_ENV:
            patch.setenv(key, new[key])
        require_kafka(new["KAFKA_BOOTSTRAP_SERVERS"], 60)
    require_redis(new["REDIS_URL"], 10, tls=ca)


def test_the_java_subscriber_reads_with_the_documented_properties(
    secure: SecureStack, scenario: Scenario, java_jar: Path, tmp_path: Path
) -> None:
    """examples/java-subscriber/README.md's client properties, for a team of its own."""
    send(scenario, make_events(20, seed=33))
    service = ServiceProcess(
        scenario, tmp_path, "svc", **role_env(secure, "service", scenario)
    ).start()
    try:
        wait_for_outputs(scenario.endpoints.bootstrap, scenario.output_topic, 20)
    finally:
        service.kill()
    team = stack_cli(secure, scenario, "add-subscriber", f"java{scenario.tag}")
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{team["KAFKA_SASL_USERNAME"]}" password="{team["KAFKA_SASL_PASSWORD"]}";'
    )
    records = subscribe(
        java_jar,
        team["KAFKA_BOOTSTRAP_SERVERS"],
        scenario.output_topic,
        f"java{scenario.tag}-reporting",
        20,
        *("--property", "security.protocol=SASL_SSL"),
        *("--property", "sasl.mechanism=SCRAM-SHA-512"),
        *("--property", f"sasl.jaas.config={jaas}"),
        *("--property", "ssl.truststore.type=PEM"),
        *("--property", f"ssl.truststore.location={team['KAFKA_SSL_CA_LOCATION']}"),
    )
    assert len({r["customer_number"] for r in records}) == 20
