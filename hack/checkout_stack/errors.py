"""Errors that name the component, show its log and say how to fix it."""

from __future__ import annotations

from pathlib import Path

LOG_TAIL_LINES = 40


def tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


class StackError(Exception):
    """A component of the stack could not be built, found or started."""

    def __init__(self, component: str, problem: str, *, fix: str, log: Path | None = None) -> None:
        self.component = component
        self.problem = problem
        self.fix = fix
        self.log = log
        super().__init__(self.render())

    def render(self) -> str:
        parts = [f"{self.component}: {self.problem}"]
        if self.log is not None:
            parts.append(f"--- last {LOG_TAIL_LINES} lines of {self.log} ---")
            parts.append(tail(self.log))
            parts.append("---")
        parts.append(f"fix: {self.fix}")
        return "\n".join(parts)


class MissingTool(StackError):
    """A binary or jar the stack needs is not installed / not built yet."""

    def __init__(self, component: str, what: str, fix: str | None = None) -> None:
        # imported here: paths imports this module
        from checkout_stack import paths

        where = f"cache {paths.cache_dir()} ({paths.cache_origin()})"
        super().__init__(
            component,
            f"{what} not found ({where})",
            fix=fix
            or "run `bash hack/setup.sh` (fresh machine) or `hack/stack build`: both build into "
            "this same cache, unless $CHECKOUT_CACHE_DIR differs between the shells",
        )
