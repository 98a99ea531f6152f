"""Base model for every config file the operator renders and the services read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ConfigModel(BaseModel):
    """Strict, immutable, camelCase on the wire (like Kubernetes), snake_case in Python.

    Unknown fields are refused, so a renderer and a service that disagree fail loudly.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
    )

    def to_json(self) -> str:
        """The canonical wire form: camelCase keys, no defaults dropped, stable key order."""
        return self.model_dump_json(by_alias=True, indent=2) + "\n"
