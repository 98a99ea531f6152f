"""The client's watch paths, retries and token rotation against a fake apiserver on loopback
(tests/unit/kube_fake.py): 410 Gone, ERROR events, bookmarks, a connection reset mid-stream,
a rotated token file, a hot loop that must not happen."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kube_fake import GROUP_VERSION, FakeApiserver, Stream, lease, lease_list, status

from checkout_kube import config, errors
from checkout_kube.client import KubeClient
from checkout_kube.watch import list_watch
from checkout_tasks import Backoff, Retries


def creds(server: FakeApiserver, **kw: Any) -> config.Credentials:
    return config.Credentials(server=server.url, **kw)


def fast() -> Retries:
    """A backoff whose every delay is its ceiling (no jitter), small enough for a test."""
    return Retries(Backoff(initial=0.05, maximum=0.2, jitter=0.0))


async def take(events: AsyncIterator[tuple[str, Any]], n: int) -> list[tuple[str, str, str]]:
    """The first ``n`` events as (type, name, resourceVersion)."""
    out: list[tuple[str, str, str]] = []
    async with asyncio.timeout(10):
        async for type_, obj in events:
            meta = obj.get("metadata") or {}
            out.append((type_, str(meta.get("name")), str(meta.get("resourceVersion"))))
            if len(out) == n:
                break
    return out


async def drain(events: AsyncIterator[Any]) -> None:
    async for _ in events:
        pass


async def test_watch_asks_for_bookmarks_from_a_resource_version() -> None:
    async def script(s: Stream) -> None:
        await s.send("MODIFIED", lease("a", "11"))
        await s.send("BOOKMARK", {"kind": "Lease", "metadata": {"resourceVersion": "15"}})

    async with FakeApiserver(watches=[script]) as server, KubeClient(creds(server)) as kube:
        got = [e async for e in kube.watch(GROUP_VERSION, "Lease", "ns", resource_version="10")]
    assert [t for t, _ in got] == ["MODIFIED", "BOOKMARK"]
    (req,) = server.watch_requests()
    assert req.params["resourceVersion"] == "10"
    assert req.params["allowWatchBookmarks"] == "true"


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [(410, "Expired", errors.Gone), (500, "InternalError", errors.ServerError)],
)
async def test_an_error_event_raises_its_status(
    code: int, reason: str, error: type[errors.ApiError]
) -> None:
    message = f"the server says {reason}: too old resource version: 10 (42)"

    async def script(s: Stream) -> None:
        await s.send("ERROR", status(code, reason, message))

    async with FakeApiserver(watches=[script]) as server, KubeClient(creds(server)) as kube:
        with pytest.raises(error) as caught:
            async for _ in kube.watch(GROUP_VERSION, "Lease", "ns", resource_version="10"):
                pass
    assert caught.value.status == code
    assert caught.value.reason == reason
    assert message in str(caught.value)


async def test_a_refused_watch_carries_the_status_body() -> None:
    async with FakeApiserver(tokens={"right"}) as server:
        kube = KubeClient(creds(server, token="wrong"))
        async with kube:
            with pytest.raises(errors.Unauthorized, match="token expired or revoked"):
                await drain(kube.watch(GROUP_VERSION, "Lease", "ns"))


async def test_list_watch_relists_after_410_and_resumes_from_bookmarks() -> None:
    async def gone_after_one(s: Stream) -> None:
        await s.send("MODIFIED", lease("a", "11"))
        await s.send("ERROR", status(410, "Expired", "too old resource version: 11 (30)"))

    async def bookmark_then_end(s: Stream) -> None:
        await s.send("BOOKMARK", {"kind": "Lease", "metadata": {"resourceVersion": "40"}})

    async def one_more(s: Stream) -> None:
        await s.send("ADDED", lease("c", "41"))

    server = FakeApiserver(
        lists=[
            lease_list("10", lease("a", "10")),
            lease_list("31", lease("a", "30"), lease("b", "31")),
        ],
        watches=[gone_after_one, bookmark_then_end, one_more],
    )
    async with server, KubeClient(creds(server)) as kube:
        events = list_watch(kube, GROUP_VERSION, "Lease", "ns", backoff=fast())
        got = await take(events, 5)
        await events.aclose()
    assert got == [
        ("ADDED", "a", "10"),  # the first list
        ("MODIFIED", "a", "11"),  # the first watch, from the list's version
        ("MODIFIED", "a", "30"),  # the relist after 410 reports only what changed...
        ("ADDED", "b", "31"),  # ...and what is new
        ("ADDED", "c", "41"),  # the watch resumed from the bookmark
    ]
    assert [r.params["resourceVersion"] for r in server.watch_requests()] == ["10", "31", "40"]
    assert len(server.list_requests()) == 2


async def test_list_watch_reports_deletions_found_by_a_relist() -> None:
    async def gone(s: Stream) -> None:
        await s.send("ERROR", status(410, "Expired", "too old"))

    server = FakeApiserver(
        lists=[
            lease_list("10", lease("a", "10"), lease("b", "10")),
            lease_list("20", lease("a", "10")),
        ],
        watches=[gone],
    )
    async with server, KubeClient(creds(server)) as kube:
        events = list_watch(kube, GROUP_VERSION, "Lease", "ns", backoff=fast())
        got = await take(events, 3)
        await events.aclose()
    assert got == [("ADDED", "a", "10"), ("ADDED", "b", "10"), ("DELETED", "b", "None")]


async def test_list_watch_resumes_after_a_connection_reset_mid_stream() -> None:
    async def reset_after_one(s: Stream) -> None:
        await s.send("MODIFIED", lease("a", "12"))
        await s.raw('{"type": "MODIFIED", "obj')  # half an event, then the line is cut
        s.reset()

    async def next_one(s: Stream) -> None:
        await s.send("MODIFIED", lease("a", "13"))

    failures: list[errors.KubeError] = []
    server = FakeApiserver(
        lists=[lease_list("10", lease("a", "10"))], watches=[reset_after_one, next_one]
    )
    async with server, KubeClient(creds(server)) as kube:
        events = list_watch(
            kube, GROUP_VERSION, "Lease", "ns", backoff=fast(), on_error=failures.append
        )
        got = await take(events, 3)
        await events.aclose()
    assert got == [("ADDED", "a", "10"), ("MODIFIED", "a", "12"), ("MODIFIED", "a", "13")]
    assert [r.params["resourceVersion"] for r in server.watch_requests()] == ["10", "12"]
    assert len(server.list_requests()) == 1  # resumed, not relisted
    assert len(failures) == 1
    assert isinstance(failures[0], errors.TransportError)


async def test_an_unreadable_event_is_an_error_not_a_crash() -> None:
    async def torn(s: Stream) -> None:
        await s.raw("this is not json\n")

    async with FakeApiserver(watches=[torn]) as server, KubeClient(creds(server)) as kube:
        with pytest.raises(errors.UnreadableAnswer, match="unreadable watch event"):
            async for _ in kube.watch(GROUP_VERSION, "Lease", "ns"):
                pass


@pytest.mark.parametrize("answer", ["error", "empty"])
async def test_list_watch_never_spins(answer: str) -> None:
    """A server that answers every watch with an ERROR event, or ends every watch at once
    without any event: the loop waits a growing backoff between watches."""

    async def script(s: Stream) -> None:
        if answer == "error":
            await s.send("ERROR", status(500, "InternalError", "etcd is sad"))

    failures: list[errors.KubeError] = []
    server = FakeApiserver(lists=[lease_list("10")], watches=[script] * 1000)
    async with server, KubeClient(creds(server)) as kube:
        events = list_watch(
            kube, GROUP_VERSION, "Lease", "ns", backoff=fast(), on_error=failures.append
        )
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(drain(events), 1.0)
    # delays 0.05, 0.1, 0.2, 0.2, ...: at most ~7 watches in a second (a hot loop makes hundreds)
    assert 2 <= len(server.watch_requests()) <= 8
    if answer == "error":
        assert failures
        assert all("etcd is sad" in str(f) for f in failures)


async def test_a_rotated_token_file_is_read_again_on_401(tmp_path: pathlib.Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    server = FakeApiserver(tokens={"one"}, lists=[lease_list("5", lease("a", "5"))])
    async with server, KubeClient(creds(server, token_file=str(token))) as kube:
        assert len(await kube.list(GROUP_VERSION, "Lease", "ns")) == 1
        # the kubelet rotates the projected token; the server stops accepting the old one
        token.write_text("two\n")
        server.tokens = {"two"}
        assert len(await kube.list(GROUP_VERSION, "Lease", "ns")) == 1

        async def script(s: Stream) -> None:
            await s.send("ADDED", lease("a", "6"))

        server.watches.append(script)
        token.write_text("three\n")
        server.tokens = {"three"}
        got = [e async for e in kube.watch(GROUP_VERSION, "Lease", "ns")]
    assert [t for t, _ in got] == ["ADDED"]
    sent = [r.token for r in server.requests if r.path != "/apis/coordination.k8s.io/v1"]
    assert sent == ["one", "one", "two", "two", "three"]


async def test_5xx_is_retried_for_idempotent_verbs_only() -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
    server = FakeApiserver(
        lists=[(503, status(503, "ServiceUnavailable", "busy")), lease_list("5")],
        routes={("POST", path): (503, status(503, "ServiceUnavailable", "busy"))},
    )
    async with server, KubeClient(creds(server)) as kube:
        assert await kube.list(GROUP_VERSION, "Lease", "ns") == []
        assert kube.retried == 1
        with pytest.raises(errors.ServerError, match="busy"):
            await kube.request("POST", path, body={"kind": "Lease"})
        assert kube.retried == 1  # a create is not sent twice
    assert [r.method for r in server.requests if r.path == path] == ["GET", "GET", "POST"]


async def test_a_refused_connection_is_retried_then_named(unused_port: int) -> None:
    kube = KubeClient(config.Credentials(server=f"http://127.0.0.1:{unused_port}"), retries=2)
    async with kube:
        with pytest.raises(errors.TransportError, match="cannot reach") as caught:
            await kube.request("POST", "/api/v1/namespaces/ns/events", body={})
    assert caught.value.unsent
    assert kube.retried == 2  # never opened: safe to send again, even a POST


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tls_pair(tmp_path: pathlib.Path, name: str) -> tuple[ssl.SSLContext, bytes]:
    """A server TLS context whose certificate names only ``name`` (not 127.0.0.1), and the CA
    (the self-signed certificate) in PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "tls.crt").write_bytes(pem)
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    return ctx, pem


async def test_tls_server_name_is_used_for_requests_and_watches(tmp_path: pathlib.Path) -> None:
    ctx, ca = tls_pair(tmp_path, "apiserver.internal")

    async def script(s: Stream) -> None:
        await s.send("ADDED", lease("a", "2"))

    server = FakeApiserver(tls=ctx, lists=[lease_list("1")], watches=[script])
    async with server:
        named = creds(server, ca_pem=ca, tls_server_name="apiserver.internal")
        async with KubeClient(named) as kube:
            assert await kube.list(GROUP_VERSION, "Lease", "ns") == []
            got = [e async for e in kube.watch(GROUP_VERSION, "Lease", "ns")]
            assert [t for t, _ in got] == ["ADDED"]
        # without the name, the certificate does not match 127.0.0.1
        async with KubeClient(creds(server, ca_pem=ca), retries=0) as kube:
            with pytest.raises(errors.TransportError):
                await kube.list(GROUP_VERSION, "Lease", "ns")
