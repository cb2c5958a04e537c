"""Device tokens: how a speaker, phone or browser proves to the native API which speaker user it is.

A token names one speaker user; the user id a request acts for comes from its token, never from the
request body. Only a keyed digest of each token is stored. A new device gets a random speaker user id
(`register`), which a link code then links to a citizen; an administrator can issue a token for an
existing speaker user (`issue`) or revoke all of a user's tokens (`revoke_all`).
"""

from __future__ import annotations

import secrets

from sqlalchemy import Column, DateTime, String, Table, select

from domain.clock import utc_now
from domain.crypto import secret_digest
from storage import Database, metadata

device_tokens = Table(
    "device_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(200), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Speaker user ids the native API hands out; platform ids (alexa:, kakao:, nugu:) never get device tokens.
DEVICE_USER_PREFIX = "dev-"
PLATFORM_PREFIXES = ("alexa:", "kakao:", "nugu:")


# Callers without a device token get a principal of their own per session: public answers only, no linking.
ANONYMOUS_PREFIX = "anon-"


def is_platform_user(user_id: str) -> bool:
    return user_id.startswith(PLATFORM_PREFIXES)


def is_anonymous(user_id: str) -> bool:
    return user_id.startswith(ANONYMOUS_PREFIX)


def new_anonymous_user() -> str:
    return ANONYMOUS_PREFIX + secrets.token_hex(12)


class DeviceTokens:
    def __init__(self, db: Database, secret_key: bytes) -> None:
        self.db = db
        self._key = secret_key

    def register(self) -> tuple[str, str]:
        """A new speaker user and its first token: (user_id, token). The token is shown once."""
        user_id = DEVICE_USER_PREFIX + secrets.token_hex(12)
        return user_id, self.issue(user_id)

    def issue(self, user_id: str) -> str:
        """A new token for `user_id` (its other tokens stay valid)."""
        if is_platform_user(user_id):
            raise ValueError("speaker platform users are authenticated by their platform, not by device tokens")
        token = "dt-" + secrets.token_urlsafe(32)
        self.add(user_id, token)
        return token

    def add(self, user_id: str, token: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(device_tokens.insert().values(
                token_hash=secret_digest(token, self._key), user_id=user_id, created_at=utc_now()))

    def user_for(self, token: str) -> str | None:
        """The speaker user a token names, or None for an unknown or revoked token."""
        with self.db.read() as conn:
            return conn.execute(select(device_tokens.c.user_id).where(
                device_tokens.c.token_hash == secret_digest(token, self._key))).scalar()

    def has_tokens(self, user_id: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(device_tokens.c.token_hash).where(
                device_tokens.c.user_id == user_id).limit(1)).first() is not None

    def revoke_all(self, user_id: str) -> int:
        with self.db.transaction() as conn:
            return conn.execute(device_tokens.delete().where(device_tokens.c.user_id == user_id)).rowcount
