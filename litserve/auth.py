"""API-key authentication: ``LIT_SERVER_API_KEY`` checked against ``X-API-Key`` or a bearer token."""

from __future__ import annotations

import hmac
import os
from typing import Callable, List, Optional, Tuple

API_KEY_ENV = "LIT_SERVER_API_KEY"
# What a request without a valid key is told (401).
MISSING_API_KEY_MESSAGE = "Invalid or missing API key: send it in the X-API-Key header"

Headers = List[Tuple[bytes, bytes]]


def api_key_from_env() -> Optional[str]:
    """The configured key, or None when the variable is unset or empty."""
    return os.environ.get(API_KEY_ENV) or None


def api_key_checker(api_key: str) -> Callable[[Headers], bool]:
    """A check that accepts ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (what OpenAI SDKs send).

    Keys are compared in constant time.
    """
    expected = api_key.encode()

    def authenticate(headers: Headers) -> bool:
        for name, value in headers:
            if name == b"x-api-key":
                if hmac.compare_digest(value, expected):
                    return True
            elif name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected):
                    return True
        return False

    return authenticate
