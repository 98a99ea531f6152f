"""Rendered objects as one YAML stream (multi-line strings as literal blocks, for review)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump_all(objects: Iterable[Any]) -> str:
    """``---``-separated YAML documents, keys in the order the builders wrote them."""
    return yaml.dump_all(
        list(objects), Dumper=_Dumper, sort_keys=False, explicit_start=True, width=100
    )
