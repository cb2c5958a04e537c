"""Fixed-window attempt counters in the database, so a limit holds across worker processes and nodes
(token endpoint guesses, link-code guesses per user, per address and in total)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Column, Connection, DateTime, Integer, String, Table, insert, select, update

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


class AttemptLimiter:
    def __init__(self, limit: int, window_s: int, clock: Clock) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window_s)
        self.clock = clock

    def hit(self, conn: Connection, key: str) -> int | None:
        """Count one attempt for `key`; None when allowed, else the seconds until the window resets."""
        now = self.clock()
        row = (
            conn.execute(select(rate_limits).where(rate_limits.c.key == key).with_for_update())
            .mappings()
            .first()
        )
        if row is None:
            conn.execute(insert(rate_limits).values(key=key, window_start=now, count=1))
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
        row = conn.execute(select(rate_limits).where(rate_limits.c.key == key).with_for_update()).mappings().first()
        if row is None:
            conn.execute(insert(rate_limits).values(key=key, window_start=now, count=1))
        elif now - aware(row["window_start"]) >= self.window:
            conn.execute(update(rate_limits).where(rate_limits.c.key == key).values(window_start=now, count=1))
        else:
            conn.execute(update(rate_limits).where(rate_limits.c.key == key).values(count=rate_limits.c.count + 1))
