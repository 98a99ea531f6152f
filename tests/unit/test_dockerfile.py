"""Structure of the repository's Dockerfile (a hadolint-like set of checks).

The images are built for real by `make image` (podman, tests/containers); these assertions keep
the Dockerfile honest for Docker users too: pinned base, multi-stage, numeric non-root USER in
both runtime stages, no secrets, ENTRYPOINTs that are the project's console scripts.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import tomllib
from dataclasses import dataclass

import example_data as helpers
import pytest

DOCKERFILE = helpers.ROOT / "Dockerfile"
SECRETY = re.compile(r"(password|passwd|secret|token|api[_-]?key|private[_-]?key)", re.I)


@dataclass(frozen=True)
class Instruction:
    op: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        op, _, args = buf.partition(" ")
        out.append(Instruction(op.upper(), args.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


INSTRUCTIONS = parse(DOCKERFILE.read_text())
ARGS = {
    i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
    for i in INSTRUCTIONS
    if i.op == "ARG" and "=" in i.args
}


def resolve(image: str) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: ARGS[m.group(1) or m.group(2)], image)


def stages() -> list[tuple[str, str | None]]:
    out = []
    for i in INSTRUCTIONS:
        if i.op == "FROM":
            parts = i.args.split()
            image = resolve(parts[0])
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            out.append((image, alias))
    return out


def test_parser_sees_every_instruction() -> None:
    ops = [i.op for i in INSTRUCTIONS]
    assert ops.count("FROM") == 4
    assert ops[-2:] == ["ENTRYPOINT", "CMD"]


def test_multi_stage_builders_and_two_runtime_targets() -> None:
    assert [alias for _, alias in stages()] == [
        "builder",
        "services-builder",
        "services",
        "operator",  # the last stage: what `docker build .` makes
    ]
    assert stages()[1][0] == "builder"  # the services' venv extends the operator's
    copies = [i.args for i in INSTRUCTIONS if i.op == "COPY" and "--from=" in i.args]
    assert copies == [
        "--from=services-builder /opt/venv /opt/venv",
        "--from=builder /opt/venv /opt/venv",
    ]


def test_base_images_are_pinned_slim_python() -> None:
    aliases = {alias for _, alias in stages()}
    for image, _ in stages():
        if image in aliases:
            continue
        name, _, tag = image.partition(":")
        assert name == "python", image
        assert re.fullmatch(r"3\.1[1-9]\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", tag), (
            f"{image}: pin the base by an exact version tag (and digest)"
        )
        assert "latest" not in tag


def stage_instructions(alias: str) -> list[Instruction]:
    starts = [n for n, i in enumerate(INSTRUCTIONS) if i.op == "FROM"] + [len(INSTRUCTIONS)]
    for begin, end in itertools.pairwise(starts):
        if INSTRUCTIONS[begin].args.split()[-1] == alias:
            return INSTRUCTIONS[begin + 1 : end]
    raise LookupError(alias)


@pytest.mark.parametrize("target", ["operator", "services"])
def test_runtime_stages_run_as_numeric_non_root_user(target: str) -> None:
    users = [i.args for i in stage_instructions(target) if i.op == "USER"]
    assert users, f"the {target} stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "numeric USER so runAsNonRoot can verify it"
    assert int(uid) >= 10000
    assert not gid or int(gid) > 0


def test_no_secrets_no_add_no_sudo() -> None:
    for i in INSTRUCTIONS:
        assert i.op != "ADD", "use COPY (ADD fetches URLs and unpacks archives)"
        if i.op in {"ENV", "ARG", "LABEL"}:
            assert not SECRETY.search(i.args), f"{i.op} {i.args}: secrets do not belong in images"
        if i.op == "RUN":
            assert "sudo" not in i.args
            assert "curl" not in i.args, "nothing fetched outside pip"
            assert "wget" not in i.args, "nothing fetched outside pip"


def test_entrypoints_are_console_scripts_of_the_project() -> None:
    scripts = tomllib.loads((helpers.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    operator = stage_instructions("operator")
    entry = next(i for i in operator if i.op == "ENTRYPOINT")
    cmd = next(i for i in operator if i.op == "CMD")
    argv = json.loads(entry.args)  # exec form, so signals reach the operator
    assert argv == ["checkout-operator"]
    assert argv[0] in scripts
    assert json.loads(cmd.args) == ["run", "--all-namespaces"]
    services = next(i for i in stage_instructions("services") if i.op == "ENTRYPOINT")
    assert json.loads(services.args) == ["checkout-services"]
    assert "checkout-services" in scripts


def test_builder_installs_the_wheel_into_a_venv_on_path() -> None:
    run = " ".join(i.args for i in INSTRUCTIONS if i.op == "RUN")
    assert "python -m venv /opt/venv" in run
    assert re.search(r"pip install /dist/checkout_operator-\*\.whl", run)
    env = " ".join(i.args for i in INSTRUCTIONS if i.op == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in shlex.split(env)
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # read-only root filesystem


def test_build_context_has_what_the_builder_copies() -> None:
    for i in INSTRUCTIONS:
        if i.op == "COPY" and "--from=" not in i.args:
            *sources, _dest = i.args.split()
            for src in sources:
                assert (helpers.ROOT / src).exists(), src
    ignored = (helpers.ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert ".git" in ignored
