"""Revoking, suspending and resuming issued credentials: the status-list bit and the record, together.

Revocation is final (Bitstring Status List: a revocation bit is never cleared); suspension can be
lifted. Each call is one transaction and idempotent — revoking a revoked credential changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from domain.clock import Clock, aware
from storage import Database
from wallet_bridge.status_list import StatusLists
from wallet_bridge.tables import issued_credentials


class UnknownCredential(LookupError):
    """No credential with that id was issued here."""


class CredentialAlreadyRevoked(ValueError):
    """A revoked credential cannot be suspended or resumed."""


@dataclass(frozen=True)
class CredentialState:
    id: str
    doc_type: str
    citizen_id: str | None
    certificate_id: str | None
    issued_at: datetime
    valid_until: datetime | None
    revoked: bool
    suspended: bool

    @property
    def status(self) -> str:
        return "revoked" if self.revoked else "suspended" if self.suspended else "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "doc_type": self.doc_type,
            "certificate_id": self.certificate_id,
            "status": self.status,
            "issued_at": self.issued_at.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }


def _state(row: Any) -> CredentialState:
    return CredentialState(
        id=row["id"],
        doc_type=row["doc_type"],
        citizen_id=row["citizen_id"],
        certificate_id=row["certificate_id"],
        issued_at=aware(row["issued_at"]),
        valid_until=aware(row["valid_until"]) if row["valid_until"] else None,
        revoked=row["revoked_at"] is not None,
        suspended=bool(row["suspended"]),
    )


class CredentialStatusControl:
    def __init__(self, db: Database, status_lists: StatusLists, clock: Clock) -> None:
        self.db = db
        self.status_lists = status_lists
        self.clock = clock

    def _row(self, conn: Connection, credential_id: str) -> Any:
        row = (
            conn.execute(
                select(issued_credentials).where(issued_credentials.c.id == credential_id).with_for_update()
            )
            .mappings()
            .first()
        )
        if row is None:
            raise UnknownCredential(credential_id)
        return row

    def revoke(self, credential_id: str) -> CredentialState:
        with self.db.transaction() as conn:
            row = self._row(conn, credential_id)
            self.status_lists.set_status(conn, row["revocation_list_id"], row["revocation_index"], True)
            if row["revoked_at"] is None:
                conn.execute(
                    update(issued_credentials)
                    .where(issued_credentials.c.id == credential_id)
                    .values(revoked_at=self.clock())
                )
            return _state(self._row(conn, credential_id))

    def suspend(self, credential_id: str) -> CredentialState:
        return self._set_suspended(credential_id, True)

    def resume(self, credential_id: str) -> CredentialState:
        return self._set_suspended(credential_id, False)

    def _set_suspended(self, credential_id: str, suspended: bool) -> CredentialState:
        with self.db.transaction() as conn:
            row = self._row(conn, credential_id)
            if row["revoked_at"] is not None:
                raise CredentialAlreadyRevoked(credential_id)
            self.status_lists.set_status(conn, row["suspension_list_id"], row["suspension_index"], suspended)
            # Suspending a suspended credential again keeps the time its suspension began (a retry is no news).
            since = (row["suspended_at"] if row["suspended"] else self.clock()) if suspended else None
            conn.execute(
                update(issued_credentials)
                .where(issued_credentials.c.id == credential_id)
                .values(suspended=suspended, suspended_at=since)
            )
            return _state(self._row(conn, credential_id))

    def state(self, credential_id: str) -> CredentialState | None:
        with self.db.read() as conn:
            row = (
                conn.execute(select(issued_credentials).where(issued_credentials.c.id == credential_id))
                .mappings()
                .first()
            )
        return _state(row) if row else None

    def for_citizen(self, citizen_id: str) -> list[CredentialState]:
        """Every credential issued to the citizen, oldest first (the certificate-status skill reads these)."""
        with self.db.read() as conn:
            rows = (
                conn.execute(
                    select(issued_credentials)
                    .where(issued_credentials.c.citizen_id == citizen_id)
                    .order_by(issued_credentials.c.issued_at)
                )
                .mappings()
                .all()
            )
        return [_state(row) for row in rows]
