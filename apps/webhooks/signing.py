"""How a delivery is signed: HMAC-SHA256 of the exact body with the webhook's secret, in the
``X-Signature-256: sha256=<hex>`` header as GitHub sends it, so a receiver's existing check works.

The key is the secret's UTF-8 bytes; the body is the request's raw bytes, not a re-serialized
JSON (any change of spacing or key order would change the signature). docs/api.md shows the
receiver's side.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Signature-256"
EVENT_HEADER = "X-VisionForge-Event"
DELIVERY_HEADER = "X-VisionForge-Delivery"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Signature-256`` value of ``body``: ``sha256=`` and the hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body``, compared in constant time."""
    return hmac.compare_digest(signature(secret, body), header or "")
