"""How a speaker platform's user and session ids become the service's ids.

Each platform's ids are namespaced (``alexa:…``, ``kakao:…``, ``nugu:…``) so that one platform can never
address another's user. A user id that is too long for its column (200 characters), or that is itself a
credential (NUGU's access token), is replaced by a digest of it; a platform's session or conversation key
is always a digest, and only looks the service's own (random) session up. The mapping is deterministic,
so account linking (speaker user → citizen) holds across sessions.
"""

from __future__ import annotations

import hashlib

MAX_USER_ID = 200


def _digest(platform: str, raw: str, length: int) -> str:
    return hashlib.sha256(f"{platform}\x00{raw}".encode()).hexdigest()[:length]


def speaker_user_id(platform: str, raw: str, *, secret: bool = False) -> str:
    """``alexa`` + ``amzn1.ask.account.X`` → ``alexa:amzn1.ask.account.X`` (a digest when long or secret)."""
    plain = f"{platform}:{raw}"
    if secret or len(plain) > MAX_USER_ID:
        return f"{platform}:h:{_digest(platform, raw, 64)}"
    return plain


def speaker_session_id(platform: str, raw: str) -> str:
    """The key a platform's own session (or conversation) is known by server-side: always a digest, so a
    platform user key inside it is never stored or used as the service's session id."""
    return f"{platform}-h-{_digest(platform, raw, 48)}"


def platform_user_key(user_id: str, platform: str) -> str | None:
    """The platform's own user id inside a service user id of that platform (``kakao:abc`` → ``abc``), for a push
    addressed to that user; None for another platform's id and for a digest (the platform's id is not kept)."""
    prefix = f"{platform}:"
    if not user_id.startswith(prefix) or user_id.startswith(f"{platform}:h:"):
        return None
    return user_id[len(prefix):] or None
