"""Shared-secret authentication of the Kakao i and NUGU webhooks.

Both platforms send a fixed secret that the bot or play owner configured: Kakao in a header of the
skill's choosing (``X-Skill-Token`` here), NUGU as ``Authorization: token <secret>``. The comparison is
constant-time; a webhook whose secret is not configured refuses every request rather than run open.
"""

from __future__ import annotations

import hmac

from http_api import ApiError


def require_token(presented: str | None, expected: str, platform: str) -> None:
    """Raises ApiError 401 unless ``presented`` equals the configured secret (503 when none is configured)."""
    if not expected:
        raise ApiError(503, "channel_not_configured", f"The {platform} channel has no token configured.")
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError(401, "invalid_token", f"The {platform} request carries no valid token.")


def authorization_token(header: str | None) -> str | None:
    """The secret of an ``Authorization: token <secret>`` header (NUGU's scheme), else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "token" else None
