"""Push delivery through the outbox, against a real HTTP server on 127.0.0.1 that fails on purpose.

The receiver is plain http on loopback, which the outbound policy refuses in production (push URLs are
https on public addresses only). These tests are about retries and idempotency, not about that policy
(tests/security/test_outbound.py is), so their bridge runs with the tests-only switch
MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP on: loopback over http is let through, everything else stays refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from outbound import OutboundPolicy
from tests.wallet_bridge.conftest import PushReceiver, SettableClock
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.tables import outbox

LOCAL_RECEIVER = OutboundPolicy(allow_loopback_http=True)  # see the module docstring


@pytest.fixture
def bridge(db, config, certificates, clock: SettableClock) -> WalletBridge:
    return WalletBridge(db, config, certificates, clock, outbound=LOCAL_RECEIVER)


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    r = PushReceiver()
    yield r
    r.close()


def offer_with_push(bridge: WalletBridge, url: str, key: str = "confirm-1"):
    return bridge.offers.create_offer(
        "citizen-0001", "wallet-0001", "cert-0001-rrc", "resident-registration-copy", key, push_url=url
    )


def outbox_rows(bridge: WalletBridge) -> list[dict]:
    with bridge.db.read() as conn:
        return [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.id)).mappings().all()]


def test_offer_is_pushed_once_with_its_idempotency_key(bridge: WalletBridge, receiver: PushReceiver) -> None:
    offer = offer_with_push(bridge, receiver.url)
    report = bridge.outbox.dispatch_due()
    assert report.delivered == 1
    assert receiver.received == [(offer.offer_id, bridge.offers.pending_for_wallet("wallet-0001")[0])]
    assert receiver.received[0][1]["credential_offer"] == offer.credential_offer
    assert bridge.outbox.dispatch_due().delivered == 0  # nothing left to send
    assert outbox_rows(bridge)[0]["delivered_at"] is not None


def test_retried_confirmation_enqueues_one_push(bridge: WalletBridge, receiver: PushReceiver) -> None:
    offer_with_push(bridge, receiver.url)
    offer_with_push(bridge, receiver.url)
    assert len(outbox_rows(bridge)) == 1
    bridge.outbox.dispatch_due()
    assert len(receiver.received) == 1


def test_failures_back_off_exponentially_then_deliver(bridge: WalletBridge, clock: SettableClock) -> None:
    receiver = PushReceiver(failures=3)
    try:
        offer_with_push(bridge, receiver.url)
        delays = []
        for _ in range(3):
            before = clock.now
            assert bridge.outbox.dispatch_due().retrying == 1
            due = outbox_rows(bridge)[0]["next_attempt_at"].replace(tzinfo=before.tzinfo)
            delays.append(due - before)
            assert bridge.outbox.dispatch_due().retrying == 0  # not due yet: nothing is sent early
            clock.now = due
        assert delays == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20)]
        assert bridge.outbox.dispatch_due().delivered == 1
        assert len(receiver.received) == 1
        row = outbox_rows(bridge)[0]
        assert row["attempts"] == 4 and row["last_status"] == "200"
    finally:
        receiver.close()


def test_target_down_loses_nothing(bridge: WalletBridge, clock: SettableClock) -> None:
    receiver = PushReceiver()
    url = receiver.url
    receiver.close()  # the wallet's push endpoint is down: connection refused
    offer = offer_with_push(bridge, url)
    assert bridge.outbox.dispatch_due().retrying == 1
    assert outbox_rows(bridge)[0]["last_status"] == "ConnectionError"
    # The offer is still in the mailbox for the wallet to fetch.
    assert [m["offer_id"] for m in bridge.offers.pending_for_wallet("wallet-0001")] == [offer.offer_id]


def test_gives_up_after_the_last_attempt(db, config, certificates, clock: SettableClock) -> None:
    bridge = WalletBridge(db, replace(config, offer_ttl_s=86_400), certificates, clock, outbound=LOCAL_RECEIVER)
    receiver = PushReceiver(failures=100)
    try:
        offer_with_push(bridge, receiver.url)
        outcomes = []
        for _ in range(config.outbox_max_attempts):
            report = bridge.outbox.dispatch_due()
            outcomes.append("retrying" if report.retrying else "given_up" if report.given_up else "-")
            clock.advance(hours=1)
        assert outcomes == ["retrying"] * (config.outbox_max_attempts - 1) + ["given_up"]
        row = outbox_rows(bridge)[0]
        assert row["given_up_at"] is not None and row["attempts"] == config.outbox_max_attempts
        assert row["last_status"] == "503"
        assert bridge.outbox.dispatch_due().retrying == 0
    finally:
        receiver.close()


def test_push_stops_when_the_offer_expires(bridge: WalletBridge, clock: SettableClock) -> None:
    receiver = PushReceiver(failures=100)
    try:
        offer_with_push(bridge, receiver.url)
        assert bridge.outbox.dispatch_due().retrying == 1
        clock.advance(minutes=11)
        assert bridge.outbox.dispatch_due().given_up == 1
        assert outbox_rows(bridge)[0]["last_status"] == "offer no longer pending"
    finally:
        receiver.close()


def test_backoff_is_capped(bridge: WalletBridge) -> None:
    assert bridge.outbox.backoff(1) == timedelta(seconds=5)
    assert bridge.outbox.backoff(20) == timedelta(hours=1)


def test_offer_redeemed_before_its_push_is_not_pushed(bridge: WalletBridge, receiver: PushReceiver) -> None:
    offer = offer_with_push(bridge, receiver.url)
    grant = offer.credential_offer["grants"]["urn:ietf:params:oauth:grant-type:pre-authorized_code"]
    bridge.offers.exchange_token(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
            "pre-authorized_code": grant["pre-authorized_code"],
            "tx_code": offer.tx_code,
        },
        "127.0.0.1",
    )
    assert bridge.outbox.dispatch_due().given_up == 1
    assert receiver.received == []


def test_a_claimed_row_is_not_claimed_again_while_its_lease_holds(
        bridge: WalletBridge, receiver: PushReceiver, clock: SettableClock) -> None:
    offer = offer_with_push(bridge, receiver.url)
    claim = bridge.outbox.claim_next()
    assert claim is not None and claim.offer_id == offer.offer_id and claim.attempt == 1
    row = outbox_rows(bridge)[0]
    assert row["claimed_by"] == bridge.outbox.node_id and row["attempts"] == 1
    # Another dispatcher finds nothing to send while the claim holds, however often it looks.
    assert bridge.outbox.claim_next() is None
    clock.advance(seconds=bridge.config.outbox_claim_lease_s - 1)
    assert bridge.outbox.dispatch_due().delivered == 0
    assert bridge.outbox.deliver(claim) == "delivered"
    assert len(receiver.received) == 1
    row = outbox_rows(bridge)[0]
    assert row["delivered_at"] is not None and row["claimed_until"] is None


def test_a_lapsed_claim_is_sent_again_and_the_late_outcome_is_not_recorded(
        bridge: WalletBridge, receiver: PushReceiver, clock: SettableClock) -> None:
    offer_with_push(bridge, receiver.url)
    abandoned = bridge.outbox.claim_next()  # a node claims the row and then stops before sending
    assert abandoned is not None
    clock.advance(seconds=bridge.config.outbox_claim_lease_s + 1)
    assert bridge.outbox.dispatch_due().delivered == 1  # sent again once the lease ran out
    assert outbox_rows(bridge)[0]["attempts"] == 2
    # The first node comes back and sends too (at least once): its outcome does not overwrite the record.
    assert bridge.outbox.deliver(abandoned) == "claim_lost"
    row = outbox_rows(bridge)[0]
    assert row["attempts"] == 2 and row["last_status"] == "200" and row["claimed_until"] is None
