"""Per-citizen app tokens: how the citizen's own app authenticates to read their consents and receipts.

Only a keyed digest of each token is stored (`domain.crypto.secret_digest`; tokens are 32 random bytes,
so a fast digest is enough; a slow hash protects low-entropy secrets such as PINs). Lookups compare
digests, never tokens.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Column, DateTime, ForeignKey, String, Table, select

from domain.clock import utc_now
from domain.crypto import secret_digest
from storage import Database, metadata

citizen_app_tokens = Table(
    "citizen_app_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class CitizenTokens:
    def __init__(self, db: Database, secret_key: bytes) -> None:
        self.db = db
        self._key = secret_key

    def add(self, citizen_id: str, token: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(citizen_app_tokens.insert().values(
                token_hash=secret_digest(token, self._key), citizen_id=citizen_id, created_at=utc_now()))

    def issue(self, citizen_id: str) -> str:
        """A new random token for the citizen's app; shown once, only its hash is kept."""
        token = "ct-" + secrets.token_urlsafe(32)
        self.add(citizen_id, token)
        return token

    def citizen_for(self, token: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(citizen_app_tokens.c.citizen_id).where(
                citizen_app_tokens.c.token_hash == secret_digest(token, self._key))).scalar()
