"""c_nonce values for key proofs (OID4VCI 1.0 §7): issued by the Nonce Endpoint, each usable once."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import Connection, delete, insert, update

from domain.clock import Clock
from storage import Database
from wallet_bridge.tables import nonces

MAX_NONCE_CHARS = 64


class NonceStore:
    def __init__(self, db: Database, ttl_s: int, clock: Clock) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_s)
        self.clock = clock

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(24)
        now = self.clock()
        with self.db.transaction() as conn:
            # Expired nonces are useless; clearing them here keeps the table as small as the traffic.
            conn.execute(delete(nonces).where(nonces.c.expires_at < now - self.ttl))
            conn.execute(insert(nonces).values(nonce=nonce, expires_at=now + self.ttl, used_at=None))
        return nonce

    def consume(self, conn: Connection, nonce: str) -> bool:
        """True exactly once for a nonce this service issued and that has not expired."""
        if not isinstance(nonce, str) or not nonce or len(nonce) > MAX_NONCE_CHARS:
            return False
        now = self.clock()
        result = conn.execute(
            update(nonces)
            .where(nonces.c.nonce == nonce, nonces.c.used_at.is_(None), nonces.c.expires_at > now)
            .values(used_at=now)
        )
        return result.rowcount == 1
