"""Print the README's two commands (the first ```bash block under "## The two commands"), one
per line, without their comments: what a newcomer types, and what .ci/run runs as written.

    python3 hack/readme_commands.py [README.md]
"""

from __future__ import annotations

import sys
from pathlib import Path

HEADING = "## The two commands"


def commands(readme: str) -> list[str]:
    """The command lines of the first bash block after HEADING (``# comments`` dropped)."""
    _, found, rest = readme.partition(HEADING)
    if not found:
        raise ValueError(f"README has no '{HEADING}' section")
    _, fence, body = rest.partition("```bash\n")
    if not fence:
        raise ValueError(f"no ```bash block under '{HEADING}'")
    block, closed, _ = body.partition("```")
    if not closed:
        raise ValueError(f"the ```bash block under '{HEADING}' is not closed")
    out = []
    for line in block.splitlines():
        command = line.split(" #", 1)[0].strip()
        if command and not command.startswith("#"):
            out.append(command)
    if not out:
        raise ValueError(f"the ```bash block under '{HEADING}' holds no command")
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "README.md"
    try:
        print("\n".join(commands(path.read_text())))
    except (OSError, ValueError) as exc:
        print(f"readme_commands: {path}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
