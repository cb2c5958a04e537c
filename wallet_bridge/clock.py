"""Time for the wallet bridge: aware UTC everywhere, and a clock that tests can replace."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything this package stores is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
