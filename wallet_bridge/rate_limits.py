"""Fixed-window attempt counters in the database, so a limit holds across worker processes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, insert, select, update

from domain.clock import Clock, aware
from wallet_bridge.tables import rate_limits


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
