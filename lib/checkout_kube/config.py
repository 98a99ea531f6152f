"""Credentials of one cluster: from a kubeconfig (file or text) or the in-cluster service account.

Supported: client certificate + key (path or ``-data``), bearer token (or ``tokenFile``), CA
(path or ``-data``), ``insecure-skip-tls-verify``, ``tls-server-name``, current-context or a named
context. Exec plugins and auth providers are refused with a clear error. Secret material never
appears in ``repr``, logs or error messages.
"""

from __future__ import annotations

import base64
import binascii
import os
import pathlib
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from checkout_kube import errors

SERVICE_ACCOUNT_DIR: Final = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to one API server."""

    server: str
    ca_pem: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    tls_server_name: str | None = None
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    """Re-read on every request when set (projected service-account tokens rotate)."""
    default_namespace: str | None = None
    source: str = ""
    """Where these came from, for messages (a path or ``secret ns/name``), never the content."""

    def current_token(self) -> str | None:
        if self.token_file:
            try:
                return pathlib.Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise errors.ConfigError(
                    f"cannot read the token file {self.token_file}: {exc.strerror}"
                ) from None
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context trusting the cluster CA and presenting the client certificate."""
        try:
            if self.ca_pem:
                ctx = ssl.create_default_context(cadata=self.ca_pem.decode("ascii", "replace"))
            else:
                ctx = ssl.create_default_context()
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.client_cert_pem and self.client_key_pem:
                # The ssl module loads a certificate chain only from files: write them into a
                # private temporary directory (mode 0700) and remove it at once.
                with tempfile.TemporaryDirectory(prefix="checkout-operator-") as tmp:
                    cert = pathlib.Path(tmp, "client.crt")
                    key = pathlib.Path(tmp, "client.key")
                    for path, data in ((cert, self.client_cert_pem), (key, self.client_key_pem)):
                        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                        with os.fdopen(fd, "wb") as fh:
                            fh.write(data)
                    ctx.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, ValueError) as exc:
            raise errors.ConfigError(
                f"the TLS material of {self.source or 'the kubeconfig'} is unusable: "
                f"{type(exc).__name__}"
            ) from None
        return ctx


def _b64(value: Any, what: str, source: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise errors.ConfigError(f"{source}: {what} is not valid base64") from None


def _read(path: Any, base: pathlib.Path | None, what: str, source: str) -> bytes:
    p = pathlib.Path(str(path)).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    try:
        return p.read_bytes()
    except OSError as exc:
        raise errors.ConfigError(f"{source}: cannot read {what} {p}: {exc.strerror}") from None


def _named(items: Any, name: str, what: str, source: str) -> Mapping[str, Any]:
    if items is not None and not isinstance(items, list):
        raise errors.ConfigError(f"{source}: {what}s is not a list")
    for item in items or ():
        if isinstance(item, Mapping) and item.get("name") == name:
            body = item.get(what)
            if isinstance(body, Mapping):
                return body
            return {}
    raise errors.ConfigError(f"{source}: no {what} named {name!r}")


def from_kubeconfig_text(
    text: str,
    *,
    context: str | None = None,
    source: str = "kubeconfig",
    base_dir: pathlib.Path | None = None,
) -> Credentials:
    """Parse a kubeconfig document. Relative paths are relative to ``base_dir``."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        # The parser's message may quote the document (and so a token): never show it.
        raise errors.ConfigError(f"{source}: not a valid YAML kubeconfig") from None
    if not isinstance(doc, Mapping):
        raise errors.ConfigError(f"{source}: not a kubeconfig (expected a mapping)")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise errors.ConfigError(f"{source}: no current-context and no context given")
    ctx = _named(doc.get("contexts"), str(ctx_name), "context", source)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster", "")), "cluster", source)
    user_name = ctx.get("user")
    user = _named(doc.get("users"), str(user_name), "user", source) if user_name else {}

    server = cluster.get("server")
    if not server:
        raise errors.ConfigError(f"{source}: cluster {ctx.get('cluster')!r} has no server")
    ca: bytes | None = None
    if cluster.get("certificate-authority-data"):
        ca = _b64(cluster["certificate-authority-data"], "certificate-authority-data", source)
    elif cluster.get("certificate-authority"):
        ca = _read(cluster["certificate-authority"], base_dir, "certificate-authority", source)

    if user.get("exec") or user.get("auth-provider"):
        raise errors.ConfigError(
            f"{source}: user {user_name!r} uses an exec plugin or auth provider, which "
            "checkout-operator does not run; use a client certificate or a token"
        )
    if user.get("username") or user.get("password"):
        raise errors.ConfigError(
            f"{source}: user {user_name!r} uses basic auth, which Kubernetes removed; "
            "use a client certificate or a token"
        )
    cert: bytes | None = None
    key: bytes | None = None
    if user.get("client-certificate-data"):
        cert = _b64(user["client-certificate-data"], "client-certificate-data", source)
    elif user.get("client-certificate"):
        cert = _read(user["client-certificate"], base_dir, "client-certificate", source)
    if user.get("client-key-data"):
        key = _b64(user["client-key-data"], "client-key-data", source)
    elif user.get("client-key"):
        key = _read(user["client-key"], base_dir, "client-key", source)
    if (cert is None) != (key is None):
        raise errors.ConfigError(
            f"{source}: user {user_name!r} has a client certificate without a key or vice versa"
        )
    token = str(user["token"]) if user.get("token") else None
    token_file: str | None = None
    if not token and user.get("tokenFile"):
        tf = pathlib.Path(str(user["tokenFile"])).expanduser()
        if not tf.is_absolute() and base_dir is not None:
            tf = base_dir / tf
        token_file = str(tf)
    return Credentials(
        server=str(server).rstrip("/"),
        ca_pem=ca,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name"),
        client_cert_pem=cert,
        client_key_pem=key,
        token=token,
        token_file=token_file,
        default_namespace=ctx.get("namespace"),
        source=source,
    )


def from_kubeconfig_file(
    path: str | os.PathLike[str], *, context: str | None = None
) -> Credentials:
    p = pathlib.Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise errors.ConfigError(f"cannot read the kubeconfig {p}: {exc.strerror}") from None
    return from_kubeconfig_text(text, context=context, source=str(p), base_dir=p.parent)


def in_cluster(sa_dir: pathlib.Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    """The pod's service account (KUBERNETES_SERVICE_HOST/PORT + the mounted token and CA)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise errors.ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST is unset")
    token_file = sa_dir / "token"
    if not token_file.is_file():
        raise errors.ConfigError(f"not running in a cluster: no service-account token {token_file}")
    host = f"[{host}]" if ":" in host else host
    ns_file = sa_dir / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_pem=_read(sa_dir / "ca.crt", None, "the service-account CA", "in-cluster"),
        token_file=str(token_file),
        default_namespace=ns_file.read_text().strip() if ns_file.is_file() else None,
        source="in-cluster service account",
    )


def load(path: str | os.PathLike[str] | None = None, *, context: str | None = None) -> Credentials:
    """``path``, else ``$KUBECONFIG`` (first entry), else in-cluster, else ``~/.kube/config``."""
    if path:
        return from_kubeconfig_file(path, context=context)
    env = os.environ.get("KUBECONFIG")
    if env:
        return from_kubeconfig_file(env.split(os.pathsep)[0], context=context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    default = pathlib.Path("~/.kube/config").expanduser()
    if default.is_file():
        return from_kubeconfig_file(default, context=context)
    raise errors.ConfigError(
        "no cluster credentials: pass --kubeconfig, set KUBECONFIG, or run in a cluster"
    )
