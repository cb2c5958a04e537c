"""Time for the wallet bridge: aware UTC everywhere, and a clock that tests can replace."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

Clock = Callable[[], datetime]
KST = timezone(timedelta(hours=9), "KST")  # certificate dates are Korean calendar days


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything this package stores is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
