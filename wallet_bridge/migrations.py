"""The wallet bridge's migrations: version 1 → 2 re-encrypts the sealed secrets (pre-authorized codes, tx_codes,
issued credentials) with their place (table, column, row id) as associated data; version 2 → 3 gives the push
outbox its claim columns (which node sends a row, until when); version 6 → 7 keeps when a credential's suspension
began."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

from domain.crypto import FieldCipher
from domain.field_migration import rebind_column
from storage import MigrationContext
from wallet_bridge.tables import SEALED_COLUMNS, issued_credentials, outbox, sealed_place


def bind_sealed_v2(conn: Connection, keys: MigrationContext) -> None:
    cipher = FieldCipher(keys.secret_key)
    for table, columns in SEALED_COLUMNS.items():
        for column in columns:
            rebind_column(conn, cipher, table, column,
                          lambda row, table=table, column=column: sealed_place(table, column, row["id"]))


def add_outbox_claims_v3(conn: Connection, _context: MigrationContext) -> None:
    """Rows waiting in the outbox keep their schedule; none is claimed until a node claims it."""
    for name in ("claimed_by", "claimed_until"):
        column_type = outbox.c[name].type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {outbox.name} ADD COLUMN {name} {column_type}"))


def add_suspension_time_v7(conn: Connection, _context: MigrationContext) -> None:
    """Credentials suspended before the upgrade keep no time (their notification keeps the event it was raised
    with). A database whose table was created at version 7 by create_all has the column already."""
    if "suspended_at" in {c["name"] for c in inspect(conn).get_columns(issued_credentials.name)}:
        return
    column_type = issued_credentials.c.suspended_at.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {issued_credentials.name} ADD COLUMN suspended_at {column_type}"))
