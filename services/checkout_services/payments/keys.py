"""PSP idempotency keys: derived from the checkout and the operation, never random.

The same checkout, operation and scope give the same key in every process and every region,
so a retry, a concurrent duplicate, a restarted process or another region reaches the PSP's own
deduplication. 64 hex characters: within Adyen's limit of 64.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

Operation = Literal["authorize", "details", "capture", "void", "refund"]
MAX_KEY_LENGTH: Final = 64


def psp_idempotency_key(checkout_id: str, operation: Operation, scope: str = "") -> str:
    """``sha256("<checkout_id>:<operation>:<scope>")`` as hex.

    ``scope`` tells apart the distinct PSP operations of one checkout: the provider for an
    authorization (each provider is its own attempt), the retry round of a capture, the
    client's refund id, a digest of the shopper's details. Length-prefixing the checkout id
    keeps ``("a:b", "c")`` and ``("a", "b:c")`` apart.
    """
    material = f"{len(checkout_id)}:{checkout_id}:{operation}:{scope}"
    return hashlib.sha256(material.encode()).hexdigest()
