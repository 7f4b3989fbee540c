"""The sequences file (CUSTOMER_IDS_CONFIG): several [[sequences]] in TOML, each mistake named by
sequence and field."""

from __future__ import annotations

import tomllib
from pathlib import Path

from customer_ids.domain.errors import ConfigError
from customer_ids.domain.numbers import MAX_COUNTER, NumberTemplate
from customer_ids.domain.sequences import Router, Sequence


def _whole(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} = {value!r} is not a whole number; use 1 to {MAX_COUNTER}")
    return value


def load_sequences(path: Path, zone: str = "UTC", key: bytes | None = None) -> Router:
    """Read [[sequences]] from a TOML file; every mistake names the sequence and the field."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"CUSTOMER_IDS_CONFIG={path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"CUSTOMER_IDS_CONFIG={path}: not valid TOML: {exc}") from exc
    zone = str(data.get("timezone", zone))
    allowed = {"name", "template", "start", "period", "customer_types", "regions"}
    sequences = []
    for i, raw in enumerate(data.get("sequences", [])):
        label = raw.get("name", f"#{i + 1}")
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(
                f"{path}: sequence {label}: unknown field(s) {sorted(unknown)}; "
                f"allowed: {sorted(allowed)}"
            )
        if "name" not in raw or "template" not in raw:
            raise ConfigError(f"{path}: sequence {label}: 'name' and 'template' are required")
        try:
            sequences.append(
                Sequence(
                    name=str(raw["name"]),
                    template=NumberTemplate.parse(str(raw["template"]), zone, key),
                    start=_whole(raw.get("start", 1), f"{path}: sequence {label}: start"),
                    period=raw.get("period", "none"),
                    customer_types=frozenset(raw.get("customer_types", [])),
                    regions=frozenset(r.upper() for r in raw.get("regions", [])),
                )
            )
        except ConfigError as exc:
            message = str(exc)
            if not message.startswith(f"sequence {label}"):
                message = f"sequence {label}: {message}"
            raise ConfigError(f"{path}: {message}") from None
    try:
        return Router(tuple(sequences))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
