"""Any combination of test folders collects together (`pytest tests/payments tests/services`).

pytest imports the test folders that are not packages under their bare module names (rootdir
"prepend" mode): two folders' `conftest.py` are both `conftest`, so `from conftest import Env`
gets whichever was imported first, and two helpers or tests with one basename clash the same way.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def sources() -> list[Path]:
    return [p for p in TESTS.rglob("*.py") if "data" not in p.relative_to(TESTS).parts]


def test_no_test_imports_a_conftest() -> None:
    offenders = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(n.split(".")[-1] == "conftest" for n in names):
                offenders.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert not offenders, f"import helpers from a uniquely named module, not conftest: {offenders}"


def test_module_names_are_unique_outside_packages() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in sources():
        if path.name == "conftest.py" or (path.parent / "__init__.py").exists():
            continue  # conftests are pytest's own; a package's modules are qualified
        by_name[path.stem].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not clashes, f"these modules clash when their folders are collected together: {clashes}"
