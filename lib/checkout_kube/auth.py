"""Bearer-token authentication of the client's requests (and watches)."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Final

import httpx

from checkout_kube import config

TOKEN_TTL: Final = 60.0
"""Seconds a token read from a token file is used before the file is read again (client-go
re-reads every minute); a 401 re-reads it at once and retries the request once."""


class TokenAuth(httpx.Auth):
    """Bearer token. From a token file (in-cluster tokens rotate): cached for ``TOKEN_TTL``
    seconds, and read again at once when the server answers 401 (the request is then retried
    once with the new token, if it changed)."""

    def __init__(self, creds: config.Credentials, clock: Callable[[], float]) -> None:
        self._creds = creds
        self._clock = clock
        self._token: str | None = None
        self._read_at = -math.inf

    def token(self, *, fresh: bool = False) -> str | None:
        if not self._creds.token_file:
            return self._creds.token
        if fresh or self._clock() - self._read_at >= TOKEN_TTL:
            self._token = self._creds.current_token()
            self._read_at = self._clock()
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and self._creds.token_file:
            renewed = self.token(fresh=True)
            if renewed and renewed != token:
                request.headers["Authorization"] = f"Bearer {renewed}"
                yield request
