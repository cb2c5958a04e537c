"""Push delivery of credential offers to wallets that registered a push URL: a transactional outbox.

The outbox row is written in the same transaction as the offer, so an offer is never made without
its delivery being due, and a delivery never outlives a rolled-back offer. A dispatcher POSTs due rows
and retries failures with exponential backoff (at-least-once); the wallet tells repeats apart by the
`Idempotency-Key` header, which is the offer id. The mailbox (GET …/offers) does not depend on any of
this: an offer whose push never got through is still there to fetch.

The push URL is the wallet's, so every POST goes through `outbound.py`: https only, the host resolved and
checked at send time and the connection pinned to the checked address, no redirects. A refused address is
a failed attempt like any other (status `OutboundRefused`), made without connecting anywhere.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

import requests
from sqlalchemy import select, update

from domain.clock import Clock
from domain.crypto import FieldIntegrityError
from outbound import OutboundPolicy
from storage import Database
from wallet_bridge.config import WalletConfig
from wallet_bridge.offers import CredentialOffers
from wallet_bridge.tables import outbox

log = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    delivered: int = 0
    retrying: int = 0
    given_up: int = 0


class OfferOutbox:
    def __init__(
        self,
        db: Database,
        config: WalletConfig,
        offers: CredentialOffers,
        clock: Clock,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.offers = offers
        self.clock = clock
        self.outbound = outbound or OutboundPolicy()

    def backoff(self, attempts: int) -> timedelta:
        """Delay after the `attempts`-th failure: base, 2×base, 4×base … capped."""
        seconds = self.config.outbox_base_delay_s * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.config.outbox_max_delay_s))

    def dispatch_due(self, limit: int = 20) -> DispatchReport:
        report = DispatchReport()
        now = self.clock()
        with self.db.read() as conn:
            due = conn.execute(
                select(outbox.c.id, outbox.c.attempts)
                .where(
                    outbox.c.delivered_at.is_(None),
                    outbox.c.given_up_at.is_(None),
                    outbox.c.next_attempt_at <= now,
                )
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(limit)
            ).all()
        for row_id, attempts in due:
            outcome = self._deliver(row_id, attempts)
            if outcome == "delivered":
                report.delivered += 1
            elif outcome == "retrying":
                report.retrying += 1
            elif outcome == "given_up":
                report.given_up += 1
        return report

    def _deliver(self, row_id: int, attempts: int) -> str | None:
        now = self.clock()
        lease = timedelta(seconds=self.config.push_timeout_s * 2)
        with self.db.transaction() as conn:
            # Claim the row: another dispatcher that read the same row finds `attempts` changed and skips it.
            claimed = conn.execute(
                update(outbox)
                .where(outbox.c.id == row_id, outbox.c.attempts == attempts, outbox.c.delivered_at.is_(None))
                .values(attempts=attempts + 1, next_attempt_at=now + lease)
            ).rowcount
            if not claimed:
                return None
            row = conn.execute(select(outbox).where(outbox.c.id == row_id)).mappings().one()
            offer = self.offers.pending_row(conn, row["offer_id"])
            if offer is None:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row_id)
                    .values(given_up_at=now, last_status="offer no longer pending")
                )
                return "given_up"
            try:
                payload = self.offers.mailbox_entry(offer)
            except FieldIntegrityError:
                # A sealed code that is not this offer's is never pushed; retrying cannot repair it.
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row_id)
                    .values(given_up_at=now, last_status="integrity check failed")
                )
                log.error("offer push given up: its sealed code failed the integrity check",
                          extra={"outbox_id": row_id})
                return "given_up"
        status = self._post(row["url"], row["offer_id"], payload)
        now = self.clock()
        with self.db.transaction() as conn:
            if status == "ok":
                conn.execute(
                    update(outbox).where(outbox.c.id == row_id).values(delivered_at=now, last_status="200")
                )
                log.info("offer pushed to wallet", extra={"outbox_id": row_id, "attempt": attempts + 1})
                return "delivered"
            if attempts + 1 >= self.config.outbox_max_attempts:
                conn.execute(
                    update(outbox).where(outbox.c.id == row_id).values(given_up_at=now, last_status=status)
                )
                log.warning("offer push given up", extra={"outbox_id": row_id, "attempts": attempts + 1})
                return "given_up"
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row_id)
                .values(next_attempt_at=now + self.backoff(attempts + 1), last_status=status)
            )
            log.info(
                "offer push failed, will retry",
                extra={"outbox_id": row_id, "attempt": attempts + 1, "status": status},
            )
            return "retrying"

    def _post(self, url: str, offer_id: str, payload: dict) -> str:
        try:
            status = self.outbound.post_json(
                url, payload, headers={"Idempotency-Key": offer_id}, timeout_s=self.config.push_timeout_s
            )
        except requests.RequestException as exc:  # OutboundRefused included: recorded, retried, never lost
            return type(exc).__name__
        return "ok" if 200 <= status < 300 else str(status)


class OutboxWorker:
    """Runs the dispatcher every few seconds on a daemon thread, for as long as the process lives."""

    def __init__(self, outbox: OfferOutbox, interval_s: float = 2.0) -> None:
        self.outbox = outbox
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wallet-outbox", daemon=True)
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
                log.exception("offer push round failed")
            self._stop.wait(self.interval_s)
