"""The wallet push outbox with two nodes on one database, against a real HTTP receiver on 127.0.0.1: every offer
pushed exactly once when both nodes dispatch at once, never by two nodes at the same time, and an offer that a
node claimed and then abandoned (it died) pushed by the other node once the claim's lease has run out; and a row
that waited through the upgrade to the claim columns (schema version 3) pushed after it.

The nodes run with MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP=1, the outbound policy's tests-only switch (off by default,
a warning at every start when on): it lets plain http through to a loopback address literal, so that a receiver
inside the test can be reached; private and every other non-public address stay refused. Production push URLs
are https on public addresses, which tests/security/test_outbound.py covers.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import select, text

from migrations import MIGRATIONS, SCHEMA_VERSION, TABLE_MODULES
from services import Services
from storage import MigrationContext
from tests.nodes import run_together, running_nodes
from tests.wallet_bridge.conftest import PushReceiver
from wallet_bridge.tables import outbox

LOOPBACK_RECEIVER = {"MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP": "1"}  # see the module docstring
OFFERS = 24
DISPATCHERS_PER_NODE = 3


@pytest.fixture()
def nodes(tmp_path, database_url):
    with running_nodes(tmp_path, database_url, **LOOPBACK_RECEIVER) as both:
        yield both


@pytest.fixture()
def receiver():
    # Each push takes a moment to answer, so that the dispatchers of both nodes are busy at the same time.
    push_receiver = PushReceiver(delay_s=0.02)
    yield push_receiver
    push_receiver.close()


def offer_with_push(node: Services, url: str, key: str) -> str:
    return node.wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-rrc",
                                           "resident-registration-copy", key, push_url=url).offer_id


def outbox_rows(node: Services) -> list[dict]:
    with node.db.read() as conn:
        return [dict(row) for row in conn.execute(select(outbox).order_by(outbox.c.id)).mappings().all()]


def dispatch_until_nothing_is_due(node: Services) -> int:
    delivered = 0
    while (report := node.wallet.outbox.dispatch_due(limit=5)).delivered or report.retrying:
        delivered += report.delivered
    return delivered


def test_two_nodes_dispatching_at_once_push_every_offer_exactly_once(nodes, receiver):
    first, second = nodes
    offer_ids = [offer_with_push((first, second)[n % 2], receiver.url, f"push-{n}") for n in range(OFFERS)]
    counts = run_together([lambda node=node: dispatch_until_nothing_is_due(node)
                           for node in nodes for _ in range(DISPATCHERS_PER_NODE)])

    assert sum(counts) == OFFERS
    assert sorted(key for key, _ in receiver.received) == sorted(offer_ids)  # each once, none lost
    assert receiver.overlaps == []  # no offer was being sent by two dispatchers at the same time
    rows = outbox_rows(first)
    assert all(row["delivered_at"] is not None and row["attempts"] == 1 for row in rows)
    assert all(row["claimed_until"] is None for row in rows)
    by_node = Counter(row["claimed_by"] for row in rows)
    assert set(by_node) == {first.wallet.outbox.node_id, second.wallet.outbox.node_id}, by_node


def test_an_offer_claimed_by_a_node_that_died_is_pushed_by_the_other_after_the_lease(nodes, receiver):
    first, second = nodes
    lease_s = 1.0
    for node in nodes:  # a short lease, so that the test need not wait the production half-minute
        node.wallet.outbox.config = replace(node.wallet.outbox.config, outbox_claim_lease_s=lease_s,
                                            push_timeout_s=0.4)
    offer_id = offer_with_push(first, receiver.url, "push-abandoned")
    claimed_at = time.monotonic()
    claim = first.wallet.outbox.claim_next()
    assert claim is not None and claim.offer_id == offer_id
    first.stop()  # the node dies before it sends: nothing will ever come from it again

    assert second.wallet.outbox.dispatch_due().delivered == 0  # the claim still holds
    second.start()  # the second node's own outbox worker takes it from here
    deadline = claimed_at + 30
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [key for key, _ in receiver.received] == [offer_id]
    assert time.monotonic() - claimed_at >= lease_s  # not before the lease ran out
    row = outbox_rows(second)[0]
    assert row["claimed_by"] == second.wallet.outbox.node_id and row["attempts"] == 2
    assert row["delivered_at"] is not None and row["last_status"] == "200"


def test_a_row_waiting_in_a_version_2_outbox_is_claimed_and_pushed_after_the_upgrade(tmp_path, database_url, receiver):
    with running_nodes(tmp_path, database_url, count=1, **LOOPBACK_RECEIVER) as (node,):
        offer_id = offer_with_push(node, receiver.url, "push-before-upgrade")
        # The database as schema version 2 left it: an outbox without claim columns.
        with node.db.transaction() as conn:
            for column in ("claimed_by", "claimed_until"):
                conn.execute(text(f"ALTER TABLE wallet_outbox DROP COLUMN {column}"))
            conn.execute(text("UPDATE schema_version SET version = 2"))
        context = MigrationContext(node.settings.secret_key, node.settings.data_dir)
        assert node.db.upgrade(TABLE_MODULES, MIGRATIONS, context) == SCHEMA_VERSION
        assert node.wallet.outbox.dispatch_due().delivered == 1
        assert [key for key, _ in receiver.received] == [offer_id]
        assert outbox_rows(node)[0]["claimed_by"] == node.wallet.outbox.node_id
