"""stripe-mock: Stripe's own mock server, on loopback, HTTP only.

It answers every Stripe API route from the OpenAPI description it embeds, and refuses (400)
any request whose parameters that description does not accept: the Stripe adapter's tests send
their requests here to prove the wire format. Its answers are fixtures (not a payment
simulation); the behaviour of a real account is the PSP simulator's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from checkout_stack import paths, versions
from checkout_stack.proc import Proc, free_port, tcp_open

COMPONENT = "stripe-mock"


@dataclass
class StripeMock:
    dir: Path
    port: int = 0
    procs: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_version(self) -> str:
        return versions.STRIPE_API_VERSION

    def start(self) -> StripeMock:
        binary = paths.require(
            COMPONENT,
            paths.stripe_mock_bin(),
            "run `hack/stack build --only stripe-mock` (builds it with the Go toolchain)",
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        proc = Proc(
            COMPONENT,
            [
                str(binary),
                "-http-addr",
                f"127.0.0.1:{self.port}",
                # stripe-mock also serves HTTPS, on :12112 unless told otherwise: a port of
                # the system's choosing, so that several runs on one machine do not collide
                "-https-addr",
                "127.0.0.1:",
                "-strict-version-check",
            ],
            log=self.dir / "stripe-mock.log",
            fix="read the log above; `hack/stack build --only stripe-mock` rebuilds it",
        ).start()
        self.procs.append(proc)
        proc.wait_ready(lambda: tcp_open(self.port), timeout=60, what="listening")
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.procs.clear()
