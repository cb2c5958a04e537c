"""Errors of the OAuth 2.0 / OID4VCI endpoints, in the specs' own shape: `{"error", "error_description"}`.

These endpoints are called by wallets that follow RFC 6749 and OID4VCI 1.0, so they answer with the
registered error codes rather than the service's `{"error": {"code", "message"}}` envelope.
"""

from __future__ import annotations

from typing import Any


class OAuthError(Exception):
    def __init__(
        self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = {"Cache-Control": "no-store", **(headers or {})}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


def invalid_token(description: str) -> OAuthError:
    # RFC 6750 §3: a bad or missing bearer token is a 401 with a WWW-Authenticate challenge.
    return OAuthError(
        "invalid_token",
        description,
        401,
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )
