"""What a kubeconfig that comes from a Secret may contain: the one check, used everywhere.

A kubeconfig kept in a Secret is written by whoever can write Secrets in that namespace, not by
whoever runs the program that reads it. Read naively it can make that program send its own
credentials anywhere: ``tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token`` with
``server: http://elsewhere`` hands the reader's ServiceAccount token to ``elsewhere``; a
``client-key`` path reads any file of the reader's; ``exec`` and ``auth-provider`` run
programs; ``insecure-skip-tls-verify`` and ``http://`` let anyone on the path read the bearer
token. So a kubeconfig from a Secret may carry only inline credentials and ``https`` servers,
by an allow-list (an unknown key is refused too, so a future client feature is not silently
honoured):

* ``clusters[].cluster``: ``server`` (``https://`` only), ``certificate-authority-data``,
  ``tls-server-name``, ``insecure-skip-tls-verify`` only when false;
* ``users[].user``: ``token``, ``client-certificate-data``, ``client-key-data``;
* ``contexts[].context``: ``cluster``, ``user``, ``namespace``;
* ``extensions`` and ``preferences`` anywhere (data for other tools, never interpreted).

Readers: the operator (``spec.remoteCluster.kubeconfigSecretRef`` and
``leaseKubeconfigSecretRef``, checked before anything is applied) and the services' lease
store (``CHECKOUT_LEASE_KUBECONFIG``, the mounted ``leaseKubeconfigSecretRef``). Pure: no
files, no network. Messages name the offending field, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

TOP: Final = frozenset(
    {"apiVersion", "kind", "clusters", "users", "contexts", "current-context", "preferences"}
)
CLUSTER: Final = frozenset(
    {"server", "certificate-authority-data", "tls-server-name", "insecure-skip-tls-verify"}
)
USER: Final = frozenset({"token", "client-certificate-data", "client-key-data"})
CONTEXT: Final = frozenset({"cluster", "user", "namespace"})
IGNORED: Final = frozenset({"extensions"})
SECTIONS: Final = (("clusters", "cluster", CLUSTER), ("users", "user", USER),
                   ("contexts", "context", CONTEXT))  # fmt: skip


class NotAllowed(ValueError):
    """The kubeconfig uses something a kubeconfig from a Secret may not (the field is named)."""

    def __init__(self, where: str, path: str, why: str = "is not allowed") -> None:
        self.where = where
        self.path = path
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{path} {why} in a kubeconfig from a Secret")


def _entries(doc: Mapping[str, Any], section: str, where: str) -> list[Any]:
    items = doc.get(section)
    if items is None:
        return []
    if not isinstance(items, list):
        raise NotAllowed(where, section, "must be a list")
    return items


def check(doc: Any, where: str = "") -> None:
    """Raise :class:`NotAllowed` unless ``doc`` (a parsed kubeconfig) keeps to the allow-list.

    ``where`` prefixes the message, e.g. ``spec.remoteCluster.kubeconfigSecretRef``."""
    if not isinstance(doc, Mapping):
        raise NotAllowed(where, "the document", "must be a mapping")
    for key in doc:
        if key not in TOP and key not in IGNORED:
            raise NotAllowed(where, str(key))
    for section, item_key, allowed in SECTIONS:
        for i, item in enumerate(_entries(doc, section, where)):
            at = f"{section}[{i}]"
            if not isinstance(item, Mapping):
                raise NotAllowed(where, at, "must be a mapping")
            for key in item:
                if key not in ("name", item_key) and key not in IGNORED:
                    raise NotAllowed(where, f"{at}.{key}")
            body = item.get(item_key) or {}
            if not isinstance(body, Mapping):
                raise NotAllowed(where, f"{at}.{item_key}", "must be a mapping")
            for key, value in body.items():
                field = f"{at}.{item_key}.{key}"
                if key in IGNORED:
                    continue
                if key not in allowed:
                    raise NotAllowed(where, field)
                if key == "server" and not str(value).lower().startswith("https://"):
                    raise NotAllowed(
                        where, field, "must be an https:// URL (plain http is not allowed)"
                    )
                if key == "insecure-skip-tls-verify" and value not in (False, "false", None):
                    raise NotAllowed(where, field, "= true is not allowed")
