"""How a setting is declared once, for every settings model of the project (the service's and
the API's): a pydantic-settings field carrying its variable, default, bounds and meaning; one
`from_env` that reads a given mapping (or the environment) alone; one explanation of a mistake
that names the variable and what is allowed, never repeating a secret; one table of the
variables for `--help` and the README.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Self, get_args

from annotated_types import Ge, Le
from pydantic import Field, ValidationError
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from customer_ids.domain.errors import ConfigError

# Set while from_env validates a given mapping, so the process environment is not mixed in.
_ONLY_GIVEN: ContextVar[bool] = ContextVar("only_given", default=False)


@dataclass(frozen=True)
class Setting:
    """One environment variable as people read it: in `--help`, the README and compose checks."""

    env: str
    default: str
    meaning: str


def setting(default: Any, env: str, meaning: str, shown: str | None = None, **bounds: Any) -> Any:
    """One field: its variable, default, meaning (for --help and README) and bounds."""
    extra: JsonDict | None = {"shown_default": shown} if shown is not None else None
    if callable(default):
        return Field(
            default_factory=default,
            validation_alias=env,
            description=meaning,
            json_schema_extra=extra,
            **bounds,
        )
    return Field(
        default, validation_alias=env, description=meaning, json_schema_extra=extra, **bounds
    )


class EnvSettings(BaseSettings):
    """A frozen settings model whose fields are declared with `setting()`."""

    model_config = SettingsConfigDict(
        frozen=True,
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment; from_env gives its mapping alone."""
        return (init_settings,) if _ONLY_GIVEN.get() else (init_settings, env_settings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings from `env` (default: the process environment); empty means default.
        Every mistake is one ConfigError naming the variables."""
        given = os.environ if env is None else env
        known = set(cls.by_env())
        values = {k: v.strip() for k, v in given.items() if k in known and v.strip()}
        token = _ONLY_GIVEN.set(True)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(cls.explain(exc)) from None
        finally:
            _ONLY_GIVEN.reset(token)

    @classmethod
    def by_env(cls) -> dict[str, FieldInfo]:
        """Each field by the variable it is read from."""
        return {_env_name(info): info for info in cls.model_fields.values()}

    @classmethod
    def documented(cls) -> tuple[Setting, ...]:
        """The variables as `--help` and the README show them, in declaration order."""
        return tuple(
            Setting(env, _shown_default(info), info.description or "")
            for env, info in cls.by_env().items()
        )

    @classmethod
    def explain(cls, exc: ValidationError) -> str:
        """One sentence per mistake: the variable, what was given, what is allowed."""
        by_env = cls.by_env()
        lines = []
        for error in exc.errors():
            env = str(error["loc"][0]) if error["loc"] else ""
            info = by_env.get(env)
            given = _shown(info, error.get("input"))
            kind = error["type"]
            if info is not None and kind == "int_parsing":
                lines.append(f"{env}={given!r} is not a whole number; use {_bounds(info)}")
            elif info is not None and kind in ("greater_than_equal", "less_than_equal"):
                lines.append(f"{env}={given} is out of range; use {_bounds(info)}")
            elif info is not None and kind == "literal_error":
                allowed = ", ".join(str(a) for a in get_args(info.annotation))
                lines.append(f"{env}={given!r} is not allowed; use one of: {allowed}")
            elif kind == "value_error":
                message = str(error.get("ctx", {}).get("error", error["msg"]))
                lines.append(f"{env}={given!r}: {message}" if env else message)
            else:
                lines.append(f"{env}={given!r}: {error['msg']}" if env else error["msg"])
        return "; ".join(lines)


def _env_name(info: FieldInfo) -> str:
    alias = info.validation_alias
    assert isinstance(alias, str), "declare every field with setting()"
    return alias


def _shown_default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    return str(info.default)


def _bounds(info: FieldInfo) -> str:
    low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    return f"{low}..{high}"


def _shown(info: FieldInfo | None, given: object) -> object:
    """What an error message may repeat of a wrong value: never a secret or a password."""
    if info is not None and "SecretStr" in str(info.annotation):
        return "***"
    if isinstance(given, str) and "://" in given:
        return mask_url(given)
    return given


def mask_url(url: str) -> str:
    """A URL with its password (if any) replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}{sep}{user}:***@{host}"
