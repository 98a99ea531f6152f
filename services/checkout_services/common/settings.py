"""Settings every service shares: env vars (secrets such as DSNs come only from env), the
RegionConfig file (``REGION_CONFIG_FILE``) and the FleetRouting file (``FLEET_ROUTING_FILE``)
that the operator renders into ConfigMaps."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

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


@dataclass(frozen=True)
class CommonSettings:
    """What every stateful service reads from its environment."""

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
