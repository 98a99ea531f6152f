"""The demo's identity provider: an ES256 key, its JWKS (for the regions' gateways, in the
ConfigMap ``checkout-gateway-jwks``) and short-lived bearer tokens for the load's customers."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

JWKS_CONFIGMAP = "checkout-gateway-jwks"
JWKS_KEY = "jwks.json"
KID = "checkout-demo-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issuer:
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    _cache: dict[str, tuple[float, str]] = field(default_factory=dict)

    def jwks(self) -> str:
        numbers = self.key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "kid": KID,
            "alg": "ES256",
            "use": "sig",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        return json.dumps({"keys": [jwk]})

    def token(self, subject: str, ttl: int = 600) -> str:
        """A bearer token for ``subject`` (cached until a minute before it expires)."""
        now = time.time()
        cached = self._cache.get(subject)
        if cached is not None and cached[0] > now + 60:
            return cached[1]
        header = {"alg": "ES256", "typ": "JWT", "kid": KID}
        claims = {
            "sub": subject,
            "iat": int(now),
            "exp": int(now) + ttl,
            "iss": "checkout-demo",
            "aud": "checkout",
        }
        signing_input = (
            b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        token = signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        self._cache[subject] = (now + ttl, token)
        return token
