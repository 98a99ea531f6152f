"""Reading CheckoutRegions and PSPRoutes from files and directories (no cluster involved).

Every problem is collected, not just the first: a user fixing a file sees them all at once.
Each message reads ``file: path.to.field: what is wrong`` (``file#N`` for the N-th document of
a multi-document file).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from checkout_operator.api import fleet, load

SUFFIXES: Final = (".yaml", ".yml", ".json")


class InputError(ValueError):
    """The inputs are invalid; ``messages`` lists every problem, one line each."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = tuple(messages)


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader that refuses duplicate keys instead of silently keeping the last one."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def expand(paths: Iterable[str]) -> list[Path]:
    """Files as given; directories walked recursively for YAML/JSON files, sorted."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        else:
            out.append(path)
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}invalid YAML: {problem}"


def read_file(path: Path, errors: list[str]) -> list[fleet.Located]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        return []
    try:
        documents = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as exc:
        errors.append(f"{path}: {_yaml_problem(exc)}")
        return []
    out: list[fleet.Located] = []
    for index, document in enumerate(documents, start=1):
        source = f"{path}#{index}" if len(documents) > 1 else str(path)
        try:
            out.append(fleet.Located(source, load.parse(document)))
        except load.InvalidObject as exc:
            errors += [f"{source}: {e}" for e in exc.errors]
    return out


def load_paths(paths: Iterable[str]) -> list[fleet.Located]:
    """Parse and cross-check every object in ``paths``; raise :class:`InputError` on any problem."""
    errors: list[str] = []
    files = expand(paths)
    if not files:
        raise InputError(["no input files (give -f FILE_OR_DIR with YAML or JSON files)"])
    items: list[fleet.Located] = []
    for path in files:
        if not path.exists():
            errors.append(f"{path}: no such file or directory")
            continue
        items += read_file(path, errors)
    if errors:
        raise InputError(errors)
    problems = fleet.validate(items)
    if problems:
        raise InputError([str(p) for p in problems])
    return items
