"""Settings every service shares: env vars (secrets such as DSNs come only from env), the
RegionConfig file (``REGION_CONFIG_FILE``) and the FleetRouting file (``FLEET_ROUTING_FILE``)
that the operator renders into ConfigMaps."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from checkout_contract import config, env, routing
from checkout_contract.model import ConfigModel

M = TypeVar("M", bound=ConfigModel)


class SettingsError(Exception):
    """Bad or missing settings: the CLI prints the message and exits 2 (no traceback)."""


def env_str(name: str, default: str | None = None) -> str:
    raw = os.environ.get(name)
    if raw:
        return raw
    if default is None:
        raise SettingsError(f"missing environment variable {name}")
    return default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def redact_url(url: str) -> str:
    """``url`` without its password and query (a DSN's ``?password=`` / ``sslkey`` options):
    ``postgresql://app:***@db:5432/checkout?***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def safe_repr(obj: Any) -> str:
    """A dataclass's repr with every URL-valued field redacted (:func:`redact_url`): settings
    hold DSNs with passwords, and a repr ends up in logs and tracebacks."""
    shown = []
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, str) and "://" in value:
            value = redact_url(value)
        shown.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


def load_model(path: str | Path, model: type[M], what: str) -> M:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    try:
        return model.model_validate_json(text)
    except ValueError as exc:
        raise SettingsError(f"invalid {what} file {path}: {exc}") from None


def load_region_config(path: str | Path) -> config.RegionConfig:
    return load_model(path, config.RegionConfig, "region config")


def load_fleet_routing(path: str | Path) -> routing.FleetRouting:
    return load_model(path, routing.FleetRouting, "fleet routing")


@dataclass(frozen=True, repr=False)
class CommonSettings:
    """What every stateful service reads from its environment (its repr hides passwords)."""

    __repr__ = safe_repr

    region_config_file: str
    fleet_routing_file: str
    database_url: str = ""
    redis_url: str = ""
    kafka_bootstrap: str = ""
    outbox_relay: bool = True
    """Run the outbox relay inside the service (it can also run alone: ``outbox-relay``)."""

    @classmethod
    def from_env(
        cls, *, database: bool = False, redis: bool = False, kafka: bool = False
    ) -> CommonSettings:
        missing = [
            name
            for name, needed in (
                (env.REGION_CONFIG_FILE, True),
                (env.FLEET_ROUTING_FILE, True),
                (env.DATABASE_URL, database),
                (env.REDIS_URL, redis),
                (env.KAFKA_BOOTSTRAP_SERVERS, kafka),
            )
            if needed and not os.environ.get(name)
        ]
        if missing:
            raise SettingsError("missing environment variable(s): " + ", ".join(missing))
        return cls(
            region_config_file=os.environ[env.REGION_CONFIG_FILE],
            fleet_routing_file=os.environ[env.FLEET_ROUTING_FILE],
            database_url=os.environ.get(env.DATABASE_URL, ""),
            redis_url=os.environ.get(env.REDIS_URL, ""),
            kafka_bootstrap=os.environ.get(env.KAFKA_BOOTSTRAP_SERVERS, ""),
            outbox_relay=os.environ.get("OUTBOX_RELAY", "1") not in ("0", "false", "no"),
        )
