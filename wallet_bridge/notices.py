"""What the wallet bridge makes due for the citizen's notifications (issue 18): a credential that was revoked or
suspended, and an offer nobody collected within a day. The domain's scan (`Notifications.scan`) calls these with
its connection; they only read."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, or_, select

from domain.clock import aware
from domain.notifications import CREDENTIAL_REVOKED, CREDENTIAL_SUSPENDED, OFFER_UNCLAIMED, Due
from wallet_bridge.offers import PENDING
from wallet_bridge.tables import issued_credentials, offers

OFFER_UNCLAIMED_AFTER = timedelta(hours=24)
# Older news than this, when first seen, is not told any more.
LOOKBACK = timedelta(days=30)


def credentials_due(conn: Connection, now: datetime) -> Iterable[Due]:
    """Revoked (lately) and suspended credentials of known citizens."""
    rows = conn.execute(select(issued_credentials.c.id, issued_credentials.c.citizen_id, issued_credentials.c.doc_type,
                               issued_credentials.c.revoked_at, issued_credentials.c.suspended,
                               issued_credentials.c.suspended_at).where(
        issued_credentials.c.citizen_id.is_not(None),
        or_(issued_credentials.c.revoked_at >= now - LOOKBACK, issued_credentials.c.suspended.is_(True)),
    ).order_by(issued_credentials.c.id)).mappings().all()
    for row in rows:
        revoked = row["revoked_at"] is not None
        kind = CREDENTIAL_REVOKED if revoked else CREDENTIAL_SUSPENDED
        yield Due(row["citizen_id"], kind, row["id"], "revoked" if revoked else suspension_event(row["suspended_at"]),
                  {"doc_type": row["doc_type"]})


def suspension_event(since: datetime | None) -> str:
    """The event of one suspension: when it began, so that a credential suspended again after it was reinstated is
    told again. A suspension from before the time was kept (schema 6) is the plain word, as it was raised then."""
    return "suspended" if since is None else f"suspended:{aware(since).astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"


def offers_due(conn: Connection, now: datetime) -> Iterable[Due]:
    """Offers still pending a day after they were made."""
    rows = conn.execute(select(offers.c.id, offers.c.citizen_id, offers.c.doc_type).where(
        offers.c.state == PENDING, offers.c.created_at <= now - OFFER_UNCLAIMED_AFTER,
        offers.c.created_at >= now - LOOKBACK,
    ).order_by(offers.c.id)).mappings().all()
    for row in rows:
        yield Due(row["citizen_id"], OFFER_UNCLAIMED, row["id"], "unclaimed", {"doc_type": row["doc_type"]})


SOURCES = (credentials_due, offers_due)
