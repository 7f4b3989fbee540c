"""The Java example subscriber (examples/java-subscriber), built once per session with Maven,
and run as a real downstream consumer would run it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "examples" / "java-subscriber" / "pom.xml"
JAR = POM.parent / "target" / "customer-ids-java-subscriber.jar"
SUMMARY = re.compile(r"done: (\d+) records, (\d+) decoded, (\d+) undecodable")


def build_jar() -> Path:
    """examples/java-subscriber built: one runnable jar with both main classes."""
    missing = [tool for tool in ("java", "javac", "mvn") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the Java interop tests need {', '.join(missing)} on PATH: a JDK 17+ and Maven "
            "(apt-get install openjdk-17-jdk-headless maven)",
            pytrace=False,
        )
    try:
        built = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(POM), "package"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mvn package of {POM} took over {exc.timeout}s", pytrace=False)
    if built.returncode != 0 or not JAR.is_file():
        pytest.fail(
            f"mvn -q -f {POM} package failed (exit {built.returncode}):\n"
            f"{(built.stdout + built.stderr)[-4000:]}",
            pytrace=False,
        )
    return JAR


def subscribe(
    jar: Path, bootstrap: str, topic: str, group: str, records: int, *extra: str
) -> list[dict[str, Any]]:
    """Run the subscriber until it has printed `records` assignments; its JSON lines."""
    result = subprocess.run(
        [
            "java",
            "-jar",
            str(jar),
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--group-id",
            group,
            "--max-records",
            str(records),
            "--idle-exit-ms",
            "120000",
            *extra,
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = SUMMARY.search(result.stderr)
    assert summary is not None, result.stderr[-3000:]
    read, decoded, undecodable = (int(n) for n in summary.groups())
    assert (read, decoded, undecodable) == (records, records, 0), result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.split("\n") if line]
