"""Citizens' registered wallets: the mailbox a credential offer is put into (token stored as a hash)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import Column, ForeignKey, String, Table, select

from domain.crypto import secret_digest
from storage import Database, metadata

wallets = Table(
    "wallets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False),
    Column("push_url", String(500), nullable=True),
)


@dataclass(frozen=True)
class Wallet:
    id: str
    citizen_id: str
    push_url: str | None


class WalletRegistry:
    def __init__(self, db: Database, secret_key: bytes) -> None:
        self.db = db
        self._key = secret_key

    def register(self, wallet_id: str, citizen_id: str, token: str, push_url: str | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute(wallets.insert().values(
                id=wallet_id, citizen_id=citizen_id, token_hash=secret_digest(token, self._key), push_url=push_url))

    def set_push_url(self, wallet_id: str, push_url: str | None) -> None:
        """Offers made from now on are also POSTed to `push_url` (None: mailbox only)."""
        with self.db.transaction() as conn:
            conn.execute(wallets.update().where(wallets.c.id == wallet_id).values(push_url=push_url))

    def for_citizen(self, citizen_id: str) -> Wallet | None:
        with self.db.read() as conn:
            row = conn.execute(select(wallets).where(wallets.c.citizen_id == citizen_id)).mappings().first()
        return Wallet(row["id"], row["citizen_id"], row["push_url"]) if row else None

    def authenticate(self, wallet_id: str, token: str) -> Wallet | None:
        """The wallet when `token` is its own mailbox token; compared in constant time."""
        with self.db.read() as conn:
            row = conn.execute(select(wallets).where(wallets.c.id == wallet_id)).mappings().first()
        if row is None or not hmac.compare_digest(row["token_hash"], secret_digest(token, self._key)):
            return None
        return Wallet(row["id"], row["citizen_id"], row["push_url"])
