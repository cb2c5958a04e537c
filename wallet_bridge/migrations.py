"""Schema version 1 → 2 for the wallet bridge's sealed secrets (pre-authorized codes, tx_codes, issued
credentials): each re-encrypted with its place (table, column, row id) as associated data."""

from __future__ import annotations

from sqlalchemy import Connection

from domain.crypto import FieldCipher
from domain.field_migration import rebind_column
from storage import MigrationContext
from wallet_bridge.tables import SEALED_COLUMNS, sealed_place


def bind_sealed_v2(conn: Connection, keys: MigrationContext) -> None:
    cipher = FieldCipher(keys.secret_key)
    for table, columns in SEALED_COLUMNS.items():
        for column in columns:
            rebind_column(conn, cipher, table, column,
                          lambda row, table=table, column=column: sealed_place(table, column, row["id"]))
