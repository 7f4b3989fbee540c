"""The alerting rules (deploy/alerts.yml), their promtool unit tests (deploy/alerts_test.yml), the
Grafana dashboard and how docker-compose.yml wires them: promtool checks the PromQL and runs the
rule tests, and every metric a rule or a panel reads must be one that the service or the auditor
exports, so renaming a metric breaks a test here instead of silencing an alert."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumer.metrics import ServiceMetrics
from customer_ids.tools.audit import AuditMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "customer-ids.json"

# Series that Prometheus makes itself: each target's scrape health, and the state of the alerts.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})

# The sample names a metric family exposes, by type. A labelled metric has no samples until its
# first labels() call, so its names come from its type; those with samples are taken as they are.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type])
    return names


def service_metric_names() -> set[str]:
    """The service's (job customer-ids, port 9400)."""
    return exposed_names(ServiceMetrics().registry)


def auditor_metric_names() -> set[str]:
    """The auditor's (`customer-ids audit`, job customer-ids-audit, port 9410)."""
    return exposed_names(AuditMetrics().registry)


def known_metric_names() -> set[str]:
    return service_metric_names() | auditor_metric_names() | PROMETHEUS_SERIES


# Label lists of by/without/on/ignoring/group_*, which hold label names, not metric names.
LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
KEYWORDS = frozenset({"and", "or", "unless", "bool", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (enough of PromQL for these files)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries, Grafana's [$__rate_interval]
    text = LABEL_LIST.sub(" ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b", " ", text)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group()
        is_call = text[match.end() :].lstrip().startswith("(")  # a function or an aggregation
        if not is_call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed: run scripts/setup (it installs Debian's prometheus "
            "package, which brings promtool)",
            pytrace=False,
        )
    return subprocess.run(
        [exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def assert_succeeds(result: subprocess.CompletedProcess[str]) -> None:
    command = " ".join(str(arg) for arg in result.args)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(DEPLOY / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def panel_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


# ---------------------------------------------------------------- promtool


def test_promtool_checks_the_rules() -> None:
    assert_succeeds(promtool("check", "rules", "deploy/alerts.yml"))


def test_the_rules_unit_tests_pass() -> None:
    assert_succeeds(promtool("test", "rules", "deploy/alerts_test.yml"))


def test_prometheus_config_is_valid_and_loads_the_rules() -> None:
    assert_succeeds(promtool("check", "config", "deploy/prometheus.yml"))
    assert load_yaml(DEPLOY / "prometheus.yml")["rule_files"] == ["alerts.yml"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, with Grafana's variables filled in."""
    variables = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
    rules = []
    for n, (_, expr) in enumerate(panel_exprs()):
        filled = expr
        for variable, value in variables.items():
            filled = filled.replace(variable, value)
        assert "$" not in filled, f"a Grafana variable this test does not fill in: {expr}"
        rules.append({"record": f"dashboard:query_{n}", "expr": filled})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert_succeeds(promtool("check", "rules", str(path)))


# ---------------------------------------------------------------- what the rules say


def test_every_alert_has_a_severity_a_summary_and_what_to_do() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules), "two alerts share a name"
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 40, rule["alert"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [
        case
        for test in load_yaml(DEPLOY / "alerts_test.yml")["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alert_rules():
        name = rule["alert"]
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == name]
        assert True in outcomes, f"{name}: no test where it fires"
        assert False in outcomes, f"{name}: no test where it stays quiet"


# ---------------------------------------------------------------- metric names


def test_metric_names_finds_the_selected_metrics_only() -> None:
    expr = (
        'sum by (le, instance) (rate(a_bucket{job="x", le!="+Inf"}[5m])) > 0.5 '
        "and on (instance) b:recorded offset 10m unless absent(c == 1) or vector(0) > bool 1e3"
    )
    assert metric_names(expr) == {"a_bucket", "b:recorded", "c"}


def test_metric_names_come_from_the_registries() -> None:
    service = service_metric_names()
    assert "customer_ids_dead_lettered_total" in service  # labelled: no sample yet
    assert "customer_ids_batch_seconds_bucket" in service
    assert "customer_ids_redis_up" in service
    auditor = auditor_metric_names()
    assert "customer_ids_audit_sequence_gaps_total" in auditor  # labelled: no sample yet
    assert "customer_ids_audit_lag_records" in auditor


def test_alert_rules_use_only_known_metrics() -> None:
    known = known_metric_names()
    for rule in alert_rules():
        used = metric_names(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        assert used <= known, f"{rule['alert']}: unknown metrics {sorted(used - known)}"


def test_dashboard_uses_only_known_metrics() -> None:
    known = known_metric_names()
    exprs = panel_exprs()
    assert len(exprs) >= 10
    for title, expr in exprs:
        used = metric_names(expr)
        assert used, f"panel {title!r}: no metric found in {expr!r}"
        assert used <= known, f"panel {title!r}: unknown metrics {sorted(used - known)}"


def test_dashboard_reads_the_provisioned_prometheus() -> None:
    board = dashboard()
    assert board["uid"] == "customer-ids"
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = provisioned["datasources"]
    assert (source["type"], source["uid"]) == ("prometheus", "prometheus")
    for panel in panels(board["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


# ---------------------------------------------------------------- docker-compose.yml wiring


def test_compose_mounts_what_prometheus_and_grafana_read() -> None:
    services = load_yaml(ROOT / "docker-compose.yml")["services"]

    def mounts(service: str) -> dict[str, str]:
        """Container path -> file or folder of this repository."""
        pairs = (volume.split(":")[:2] for volume in services[service]["volumes"])
        return {inside: str((ROOT / outside).resolve()) for outside, inside in pairs}

    prometheus = mounts("prometheus")
    assert prometheus["/etc/prometheus/alerts.yml"] == str(DEPLOY / "alerts.yml")

    audit = services["customer-ids-audit"]
    port = audit["command"][audit["command"].index("--metrics-port") + 1]
    assert audit["expose"] == [port]
    assert f"localhost:{port}/healthz" in audit["healthcheck"]["test"][-1]
    jobs = load_yaml(DEPLOY / "prometheus.yml")["scrape_configs"]
    (job,) = [job for job in jobs if job["job_name"] == "customer-ids-audit"]
    assert job["dns_sd_configs"][0]["names"] == ["customer-ids-audit"]
    assert str(job["dns_sd_configs"][0]["port"]) == port

    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == str(GRAFANA / "provisioning")
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "customer-ids.yml")
    folder = provider["providers"][0]["options"]["path"]
    assert grafana[folder] == str(DASHBOARD.parent)
    source = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    assert "prometheus" in services["grafana"]["depends_on"]
