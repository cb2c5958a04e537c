"""Fixed-window attempt counters in the database, so a limit holds across worker processes and nodes
(token endpoint guesses, link-code guesses per user, per address and in total)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Integer, String, Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.clock import Clock, aware
from storage import metadata

# The table's name is older than its use outside the wallet bridge; renaming it would need a migration.
rate_limits = Table(
    "wallet_rate_limits",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
)


def _counter_row(conn: Connection, key: str, now: datetime) -> Any | None:
    """The key's counter row, locked (FOR UPDATE); None after creating it with a count of one.

    Two transactions that count a new key at once both find no row; on PostgreSQL both would then insert and
    one would fail on the primary key. Inserting with ON CONFLICT DO NOTHING lets the loser read and lock the
    winner's row instead (SQLite's BEGIN IMMEDIATE already lets one writer in at a time)."""
    lock = select(rate_limits).where(rate_limits.c.key == key).with_for_update()
    row = conn.execute(lock).mappings().first()
    if row is not None:
        return row
    values = {"key": key, "window_start": now, "count": 1}
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        # RETURNING says whether this insert won (an INSERT's rowcount is not reliable on every driver).
        created = conn.execute(upsert(rate_limits).values(**values).on_conflict_do_nothing(index_elements=["key"])
                               .returning(rate_limits.c.key)).first()
        if created is not None:
            return None
        return conn.execute(lock).mappings().one()
    conn.execute(insert(rate_limits).values(**values))
    return None


class AttemptLimiter:
    def __init__(self, limit: int, window_s: int, clock: Clock) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window_s)
        self.clock = clock

    def hit(self, conn: Connection, key: str) -> int | None:
        """Count one attempt for `key`; None when allowed, else the seconds until the window resets."""
        now = self.clock()
        row = _counter_row(conn, key, now)
        if row is None:
            return None
        start = aware(row["window_start"])
        if now - start >= self.window:
            conn.execute(
                update(rate_limits).where(rate_limits.c.key == key).values(window_start=now, count=1)
            )
            return None
        if row["count"] >= self.limit:
            return max(1, int((start + self.window - now).total_seconds()) + 1)
        conn.execute(update(rate_limits).where(rate_limits.c.key == key).values(count=row["count"] + 1))
        return None

    def exhausted(self, conn: Connection, key: str, limit: int) -> bool:
        """Whether `key` has used up `limit` attempts in its current window (counts nothing)."""
        row = conn.execute(select(rate_limits).where(rate_limits.c.key == key).with_for_update()).mappings().first()
        return row is not None and self.clock() - aware(row["window_start"]) < self.window and row["count"] >= limit

    def count(self, conn: Connection, key: str) -> None:
        """Counts one attempt for `key` in its current window (a new window when the last one ended)."""
        now = self.clock()
        row = _counter_row(conn, key, now)
        if row is None:
            return
        if now - aware(row["window_start"]) >= self.window:
            conn.execute(update(rate_limits).where(rate_limits.c.key == key).values(window_start=now, count=1))
        else:
            conn.execute(update(rate_limits).where(rate_limits.c.key == key).values(count=rate_limits.c.count + 1))
