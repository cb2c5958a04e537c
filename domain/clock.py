"""One clock for the whole service: aware UTC instants, and "today" as the Korean calendar day.

Certificate dates and validity are Korean calendar days, so every "today" in the service (what the
certificate skill reads out, what the wallet bridge will still issue, what the console shows) comes from
`korean_today`, and tests replace the clock rather than the system time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import overload

Clock = Callable[[], datetime]
KST = timezone(timedelta(hours=9), "KST")  # Asia/Seoul has kept UTC+9 without daylight saving since 1988


def utc_now() -> datetime:
    return datetime.now(UTC)


def korean_today(clock: Clock = utc_now) -> date:
    """The calendar day in Seoul at the clock's current instant."""
    return clock().astimezone(KST).date()


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
def aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
