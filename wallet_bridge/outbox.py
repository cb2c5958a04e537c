"""Push delivery of credential offers to wallets that registered a push URL: a transactional outbox.

The outbox row is written in the same transaction as the offer, so an offer is never made without
its delivery being due, and a delivery never outlives a rolled-back offer. A dispatcher POSTs due rows
and retries failures with exponential backoff (at-least-once); the wallet tells repeats apart by the
`Idempotency-Key` header, which is the offer id. The mailbox (GET …/offers) does not depend on any of
this: an offer whose push never got through is still there to fetch.

Several nodes dispatch from one database (the claim itself is storage.py's, shared with the notification pushes of
channels/pushes.py). A node claims one due row at a time: in one short transaction it
picks the row (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so nodes claiming at once take different rows instead
of queueing on one; on SQLite the writer's lock on the whole database does the same), counts the attempt and
writes its name (`claimed_by`) and the end of its lease (`claimed_until`). No other node sends the row while
the lease holds, and the lease outlasts one POST's timeouts, so a row is never sent by two nodes at once. A
node that dies mid-send leaves a lease that runs out; another node then sends the row again (at least once).
The outcome is recorded only by the node whose claim it still is.

The push URL is the wallet's, so every POST goes through `outbound.py`: https only, the host resolved and
checked at send time and the connection pinned to the checked address, no redirects. A refused address is
a failed attempt like any other (status `OutboundRefused`), made without connecting anywhere.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests
from sqlalchemy import ColumnElement, Connection, and_, update

from domain.clock import Clock
from domain.crypto import FieldIntegrityError
from outbound import OutboundPolicy
from storage import Database, claim_row, instance_id, lock_next_due, record_claimed, retry_delay_s, unclaimed
from wallet_bridge.config import WalletConfig
from wallet_bridge.offers import CredentialOffers
from wallet_bridge.tables import outbox

log = logging.getLogger(__name__)

DELIVERED, RETRYING, GIVEN_UP, CLAIM_LOST = "delivered", "retrying", "given_up", "claim_lost"


@dataclass
class DispatchReport:
    delivered: int = 0
    retrying: int = 0
    given_up: int = 0
    # Sent, but the lease had run out and another node had claimed the row by then: its outcome stands.
    claims_lost: int = 0

    def count(self, outcome: str) -> None:
        field = {DELIVERED: "delivered", RETRYING: "retrying", GIVEN_UP: "given_up", CLAIM_LOST: "claims_lost"}
        setattr(self, field[outcome], getattr(self, field[outcome]) + 1)


@dataclass(frozen=True)
class OutboxClaim:
    """One row this node has claimed: send it (`OfferOutbox.deliver`) before `until`."""

    row_id: int
    attempt: int  # this attempt's number, 1 for the first
    offer_id: str
    url: str
    payload: dict[str, Any]
    until: datetime


class OfferOutbox:
    def __init__(
        self,
        db: Database,
        config: WalletConfig,
        offers: CredentialOffers,
        clock: Clock,
        outbound: OutboundPolicy | None = None,
        node_id: str | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.offers = offers
        self.clock = clock
        self.outbound = outbound or OutboundPolicy()
        self.node_id = node_id or instance_id()

    def backoff(self, attempts: int) -> timedelta:
        """Delay after the `attempts`-th failure: base, 2×base, 4×base … capped."""
        return timedelta(seconds=retry_delay_s(attempts, self.config.outbox_base_delay_s,
                                               self.config.outbox_max_delay_s))

    def dispatch_due(self, limit: int = 20) -> DispatchReport:
        """Claims and sends due rows one at a time, at most `limit` of them."""
        report = DispatchReport()
        for _ in range(limit):
            claim = self.claim_next(report)
            if claim is None:
                break
            report.count(self.deliver(claim))
        return report

    @staticmethod
    def _due(now: datetime) -> ColumnElement[bool]:
        return and_(
            outbox.c.delivered_at.is_(None),
            outbox.c.given_up_at.is_(None),
            outbox.c.next_attempt_at <= now,
            unclaimed(outbox, now),
        )

    def claim_next(self, report: DispatchReport | None = None) -> OutboxClaim | None:
        """Claims the next due row for this node, or None when nothing is due. A row whose offer is no longer
        pending (or cannot be read) is given up on the way, counted in `report`, and the next one is taken."""
        while True:
            now = self.clock()
            with self.db.transaction() as conn:
                row = lock_next_due(conn, outbox, self._due(now), (outbox.c.next_attempt_at, outbox.c.id))
                if row is None:
                    return None
                payload, reason = self._payload(conn, row["offer_id"], row["id"])
                if payload is None:
                    conn.execute(update(outbox).where(outbox.c.id == row["id"])
                                 .values(given_up_at=now, last_status=reason))
                    if report is not None:
                        report.count(GIVEN_UP)
                    continue
                until = now + timedelta(seconds=self.config.outbox_claim_lease_s)
                attempt = claim_row(conn, outbox, row, self.node_id, until)
                return OutboxClaim(row["id"], attempt, row["offer_id"], row["url"], payload, until)

    def _payload(self, conn: Connection, offer_id: str, row_id: int) -> tuple[dict[str, Any] | None, str]:
        """The mailbox entry to push, or None and why the row is given up."""
        offer = self.offers.pending_row(conn, offer_id)
        if offer is None:
            return None, "offer no longer pending"
        try:
            return self.offers.mailbox_entry(offer), ""
        except FieldIntegrityError:
            # A sealed code that is not this offer's is never pushed; retrying cannot repair it.
            log.error("offer push given up: its sealed code failed the integrity check", extra={"outbox_id": row_id})
            return None, "integrity check failed"

    def deliver(self, claim: OutboxClaim) -> str:
        """POSTs a claimed row and records the outcome (while the claim is still this node's)."""
        status = self._post(claim.url, claim.offer_id, claim.payload)
        now = self.clock()
        if status == "ok":
            outcome, values = DELIVERED, {"delivered_at": now, "last_status": "200"}
        elif claim.attempt >= self.config.outbox_max_attempts:
            outcome, values = GIVEN_UP, {"given_up_at": now, "last_status": status}
        else:
            outcome, values = RETRYING, {"next_attempt_at": now + self.backoff(claim.attempt), "last_status": status}
        with self.db.transaction() as conn:
            recorded = record_claimed(conn, outbox, claim.row_id, self.node_id, claim.attempt, values)
        extra = {"outbox_id": claim.row_id, "attempt": claim.attempt}
        if not recorded:
            # The lease ran out before this node got here, and another node has claimed the row since: that
            # node's attempt decides. The wallet may get the offer twice; its Idempotency-Key tells it so.
            log.warning("offer push outcome not recorded: the claim had run out", extra={**extra, "status": status})
            return CLAIM_LOST
        if outcome == DELIVERED:
            log.info("offer pushed to wallet", extra=extra)
        elif outcome == GIVEN_UP:
            log.warning("offer push given up", extra=extra)
        else:
            log.info("offer push failed, will retry", extra={**extra, "status": status})
        return outcome

    def _post(self, url: str, offer_id: str, payload: dict) -> str:
        try:
            status = self.outbound.post_json(
                url, payload, headers={"Idempotency-Key": offer_id}, timeout_s=self.config.push_timeout_s
            )
        except requests.RequestException as exc:  # OutboundRefused included: recorded, retried, never lost
            return type(exc).__name__
        return "ok" if 200 <= status < 300 else str(status)


class Dispatcher(Protocol):
    """One pass over an outbox: the wallet's offer pushes (`OfferOutbox`) or the notification pushes
    (channels/pushes.py)."""

    def dispatch_due(self) -> object: ...


class OutboxWorker:
    """Runs a dispatcher every few seconds on a daemon thread, for as long as the process lives."""

    def __init__(self, outbox: Dispatcher, interval_s: float = 2.0, name: str = "wallet-outbox") -> None:
        self.outbox = outbox
        self.interval_s = interval_s
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.outbox.dispatch_due()
            except Exception:  # noqa: BLE001 - a busy database or a bug must not end push delivery for good
                log.exception("outbox round failed", extra={"outbox": self.name})
            self._stop.wait(self.interval_s)
