"""Pieces shared by the pod templates: restricted security contexts and env from Secrets."""

from __future__ import annotations

from typing import Any, Final

from checkout_operator.api.meta import SecretKeyRef

RUN_AS: Final = 10001


def pod_security_context() -> dict[str, Any]:
    """Pod-level: non-root, RuntimeDefault seccomp (Pod Security Standard ``restricted``)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level: read-only root, no privilege escalation, every capability dropped."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env_from_secret(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    """An env var filled from a Secret key: the value never appears in a rendered object."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def env_value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def tmp_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """A writable ``/tmp`` (the root filesystem is read-only): (volume, mount)."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 (a pod volume)
