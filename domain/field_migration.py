"""Schema version 1 → 2 for field ciphertexts: each one re-encrypted with its place (table, column, row key)
as AES-GCM associated data, so that it opens only in the row and column it belongs to.

Version 1 sealed fields without associated data, so a ciphertext copied from one citizen's row to
another's decrypted there as if it were theirs. The migration opens each one without associated data
and seals it again with its place, in the upgrade's transaction: all rows or none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Table, and_, select

from domain.citizens import citizens
from domain.crypto import FieldCipher, FieldIntegrityError, FieldPlace, IntegrityFailure
from domain.mydata import mydata_items, value_place
from storage import MigrationContext


def rebind_column(conn: Connection, cipher: FieldCipher, table: Table, column: str,
                  place: Callable[[Any], FieldPlace]) -> int:
    """Re-seals every ciphertext of `table.column` with `place(row)`; returns how many. A value that does not
    open without associated data stops the upgrade: it was not written by this key."""
    key = list(table.primary_key.columns)
    rows = conn.execute(select(*key, table.c[column])).mappings().all()
    for row in rows:
        target = place(row)
        try:
            plain = cipher.decrypt_unbound(row[column], target)
        except FieldIntegrityError as exc:
            raise IntegrityFailure(f"{exc}: is MINWON_SECRET_KEY the key this database was written with?") from exc
        conn.execute(table.update().where(and_(*(c == row[c.name] for c in key)))
                     .values({column: cipher.encrypt(plain, target)}))
    return len(rows)


def bind_fields_v2(conn: Connection, keys: MigrationContext) -> None:
    """The domain's sealed fields: citizens' names and My Data items."""
    cipher = FieldCipher(keys.secret_key)
    # The same place domain.citizens uses when it reads and writes a name.
    rebind_column(conn, cipher, citizens, "name_enc", lambda row: ("citizens", "name_enc", row["id"]))
    rebind_column(conn, cipher, mydata_items, "value_enc", lambda row: value_place(row["citizen_id"], row["data_item"]))
