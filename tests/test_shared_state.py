"""Two nodes on one database behave as one service (issue 15, item 2): rate limits counted together, one set of
signing keys (one JWKS, each node verifying what the other signed, a rotation seen by both), and one consent
chain whatever node appends. A "node" is a Services object with its own data directory, its own engine and
pool (on SQLite its own writer lock, as another worker process has), sharing the database and
MINWON_SECRET_KEY with the other; every test runs on SQLite and on PostgreSQL (`database_url`)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import func, select

from app import create_app
from domain.attempts import RequestLimits, rate_limits
from domain.citizens import LINK_FAILURES_PER_USER
from domain.clock import utc_now
from domain.consent_ledger import consent_events
from domain.crypto import FieldCipher, parse_compact
from domain.signing_keys import ISSUER_KEYS, KEY_CACHE_TTL_S, RECEIPT_KEYS, signing_keys
from migrations import MIGRATIONS, SCHEMA_VERSION, TABLE_MODULES
from services import Services
from storage import Database, MigrationContext
from tests.conftest import ROOT, make_settings
from tests.nodes import run_together
from tests.security.test_data_at_rest import FIXTURE_V1_EVENTS, FIXTURE_V1_KEY, v1_data_dir, v1_services
from tests.test_storage_and_cli import copy_sqlite_to
from tests.wallet_bridge.conftest import Holder, redeem_offer
from wallet_bridge.tables import issued_credentials, sealed_place

SHARED_SECRET = b"one-secret-for-every-node-of-the-test-cluster"
DEMO_DEVICE = {"Authorization": "Bearer demo-device-token-ko"}


class Frozen:
    """A clock that stands still until moved."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self):
        return self.now


class Ticks:
    """A settable monotonic clock (the key cache's)."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def node(tmp_path, name: str, database_url: str, **overrides) -> Services:
    app = create_app(make_settings(tmp_path / name, database_url=database_url, secret_key=SHARED_SECRET,
                                   load_models=False, **overrides), start=False)
    state = app.extensions["minwon"]
    state.app = app
    return state


@pytest.fixture()
def two_nodes(tmp_path, database_url):
    """Node a and node b on one fresh database with the demo data, 20 requests a minute per user and device."""
    nodes = [node(tmp_path, name, database_url, rate_limit_per_minute=20) for name in ("node-a", "node-b")]
    yield nodes
    for state in nodes:
        state.stop()


# -- rate limits ----------------------------------------------------------------------------------------------


def test_a_rate_limit_counts_the_requests_of_both_nodes_together(two_nodes):
    clock = Frozen()  # the 30 requests fall in one instant, however slow the machine is
    for state in two_nodes:
        for budget in state.rate_limits.budgets.values():
            budget.clock = clock
    clients = [state.app.test_client() for state in two_nodes]
    responses = [clients[i % 2].post("/v1/converse", json={"text": "도움말"}, headers=DEMO_DEVICE) for i in range(30)]
    statuses = [response.status_code for response in responses]
    assert statuses == [200] * 20 + [429] * 10, statuses
    assert {response.get_json()["error"]["code"] for response in responses[20:]} == {"rate_limited"}
    # 20 a minute: the next request is allowed 3 s later, on either node, and it says so.
    assert {response.headers["Retry-After"] for response in responses[20:]} == {"3"}
    clock.now += timedelta(seconds=3)
    assert clients[1].post("/v1/converse", json={"text": "도움말"}, headers=DEMO_DEVICE).status_code == 200
    assert clients[0].post("/v1/converse", json={"text": "도움말"}, headers=DEMO_DEVICE).status_code == 429


def limits_at_one_instant(two_nodes: list[Services]) -> list[RequestLimits]:
    """Both nodes' request limits, every budget's clock stopped at one instant (a race, not a sequence)."""
    clock = Frozen()
    for state in two_nodes:
        for budget in state.rate_limits.budgets.values():
            budget.clock = clock
    return [state.rate_limits for state in two_nodes]


def test_a_rate_limit_holds_when_both_nodes_are_hit_at_the_same_moment(two_nodes):
    limits = limits_at_one_instant(two_nodes)
    waits = run_together([lambda limits=limits[i % 2]: limits.retry_after([("user", "racing-user")])
                          for i in range(30)])
    assert sorted(waits) == [0] * 20 + [3] * 10


def micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def tat_of(state: Services, kind: str, key: str) -> int | None:
    """The stored instant of one budget's key, or None when it has no row (a full budget)."""
    with state.db.read() as conn:
        return conn.execute(select(rate_limits.c.tat_us).where(
            rate_limits.c.key == state.rate_limits.budgets[kind].digest(key))).scalar()


def test_a_request_charges_its_budgets_up_to_the_one_that_refuses_it_and_none_after(two_nodes):
    node_a, node_b = two_nodes
    clock = Frozen()
    for state in two_nodes:
        for budget in state.rate_limits.budgets.values():
            budget.clock = clock
    for _ in range(20):  # the device's budget, spent on node b
        assert node_b.rate_limits.retry_after([("device", "spent-device")]) == 0
    charges = [("user", "some-user"), ("device", "spent-device"), ("ip", "203.0.113.77")]
    spent = tat_of(node_a, "device", "spent-device")
    assert node_a.rate_limits.retry_after(charges) == 3
    # The user's budget (before the refusing one) was charged, once; the device's was not pushed further away;
    # the address's (after it) was not touched.
    interval = node_a.rate_limits.budgets["user"].interval_us
    assert tat_of(node_a, "user", "some-user") == micros(clock.now) + interval
    assert tat_of(node_a, "device", "spent-device") == spent
    assert tat_of(node_a, "ip", "203.0.113.77") is None
    assert node_b.rate_limits.retry_after(charges) == 3
    assert tat_of(node_a, "user", "some-user") == micros(clock.now) + 2 * interval
    # Every budget allowing it: all three are charged, in one statement.
    clock.now += timedelta(seconds=3)
    assert node_a.rate_limits.retry_after(charges) == 0
    assert tat_of(node_a, "ip", "203.0.113.77") is not None
    assert tat_of(node_a, "device", "spent-device") == spent + node_a.rate_limits.budgets["device"].interval_us
    with pytest.raises(ValueError):
        node_a.rate_limits.retry_after([("user", "twice"), ("user", "twice")])


def test_requests_charging_several_budgets_on_both_nodes_at_once_are_counted_exactly(two_nodes):
    limits = limits_at_one_instant(two_nodes)
    charges = [("user", "racing-user-2"), ("device", "racing-device"), ("ip", "203.0.113.78")]
    waits = run_together([lambda limits=limits[i % 2]: limits.retry_after(charges) for i in range(30)])
    assert sorted(waits) == [0] * 20 + [3] * 10
    # Each budget counted the 20 requests it allowed and none of the 10 refused ones.
    for kind, key in charges:
        budget = two_nodes[0].rate_limits.budgets[kind]
        assert tat_of(two_nodes[0], kind, key) == micros(budget.clock()) + 20 * budget.interval_us


def test_link_code_guesses_from_both_nodes_at_once_are_counted_exactly(two_nodes):
    # Several rounds, each with a new speaker user and address but the one total budget: the rows of the first
    # two are made by the round's guesses while the last exists, the case in which locking the budgets in
    # different orders deadlocked.
    for round_ in range(4):
        guesser, address = f"dev-guesser-{round_}", f"198.51.100.{round_ + 1}"
        results = run_together([partial(two_nodes[n % 2].accounts.redeem_link_code, guesser, f"{n:08d}",
                                         origin=address) for n in range(2 * LINK_FAILURES_PER_USER)])
        assert not any(result.citizen for result in results)
        assert sum(not result.throttled for result in results) == LINK_FAILURES_PER_USER
        assert two_nodes[round_ % 2].accounts.redeem_link_code(guesser, "00000000", origin="192.0.2.1").throttled


def test_spent_budgets_are_purged_by_either_node(two_nodes):
    node_a, node_b = two_nodes
    clock = Frozen()
    for state in two_nodes:
        state.rate_limits.clock = clock
        for budget in state.rate_limits.budgets.values():
            budget.clock = clock
    for i in range(10):
        assert node_a.rate_limits.retry_after([("user", f"user-{i}"), ("ip", "203.0.113.9")]) == 0

    def rows() -> int:
        with node_b.db.read() as conn:
            return conn.execute(select(func.count()).select_from(rate_limits)).scalar()

    assert rows() == 11
    assert node_b.rate_limits.purge() == 0  # every budget is still being refilled
    clock.now += timedelta(seconds=60)
    assert node_b.rate_limits.purge() == 11 and rows() == 0


def test_each_node_has_one_name_that_every_claim_it_takes_is_made_under(two_nodes):
    # Request claims, offer and push outbox claims and the notification scan lease: one owner name per process,
    # so that a claim a node left behind is recognised as its own by every part of it, and never by the other.
    names = [{state.node_id, state.sessions.node_id, state.wallet.outbox.node_id, state.pushes.node_id}
             for state in two_nodes]
    assert [len(each) for each in names] == [1, 1]
    assert names[0] != names[1]


# -- signing keys -----------------------------------------------------------------------------------------------


def test_both_nodes_publish_one_jwks_and_verify_what_the_other_signed(two_nodes):
    node_a, node_b = two_nodes
    client_a, client_b = (state.app.test_client() for state in two_nodes)
    jwks = client_a.get("/.well-known/jwks.json").get_json()
    assert jwks == client_b.get("/.well-known/jwks.json").get_json() and len(jwks["keys"]) == 1
    assert node_a.consents.jwks() == node_b.consents.jwks()
    assert node_a.consents.jwks()["keys"][0]["kid"] != jwks["keys"][0]["kid"]  # receipts have keys of their own
    # A credential issued on node a verifies on node b, in process and over HTTP.
    token, _ = redeem_offer(node_a.wallet, Holder(), key="two-nodes-1")
    assert node_b.wallet.verify(token).valid
    assert client_b.post("/v1/credentials/verify", json={"credential": token}).get_json()["valid"]
    # A consent change on node a has a receipt that node b reads, and node b appends after it.
    change = node_a.consents.set_consent("citizen-0002", "nts", "resident-registration", "public-service", True,
                                         "app", "principal")
    assert node_b.consents.read_receipt(change.event.receipt)["event"]["seq"] == change.event.seq
    later = node_b.consents.set_consent("citizen-0002", "nts", "resident-registration", "public-service", False,
                                        "app", "principal")
    assert later.event.seq == change.event.seq + 1 and node_a.consents.read_receipt(later.event.receipt)
    assert node_a.consents.verify_chain().ok and node_b.consents.verify_chain().ok


def test_a_rotation_on_one_node_reaches_the_other_within_the_cache_bound(two_nodes):
    node_a, node_b = two_nodes
    ticks = Ticks()
    rings_b = (node_b.wallet.keyring, node_b.consents.keyring)
    for ring in rings_b:
        ring.monotonic = ticks
        ring.refresh()
    old_issuer, old_receipt = (ring.active_key().kid for ring in rings_b)
    new_issuer = node_a.wallet.keyring.rotate().kid
    new_receipt = node_a.consents.keyring.rotate().kid
    assert [node_a.wallet.keyring.active_key().kid, node_a.consents.keyring.active_key().kid] == [
        new_issuer, new_receipt]  # node a signs with the new keys at once …
    # … node b with its cached keys until the cache runs out, KEY_CACHE_TTL_S after it read them (sooner when it
    # meets a new kid: see the next test) …
    ticks.now += KEY_CACHE_TTL_S - 0.1
    assert node_b.wallet.keyring.active_key().kid == old_issuer
    before = node_b.consents.set_consent("citizen-0002", "hf", "resident-registration", "public-service", True,
                                         "app", "principal")
    assert parse_compact(before.event.receipt).header["kid"] == old_receipt  # still a valid, published key
    # … then with the new ones, and both nodes publish the same key sets again.
    ticks.now += 0.1
    assert [ring.active_key().kid for ring in rings_b] == [new_issuer, new_receipt]
    assert node_a.wallet.keyring.jwks() == node_b.wallet.keyring.jwks()
    assert node_a.consents.jwks() == node_b.consents.jwks()
    after = node_b.consents.set_consent("citizen-0002", "hf", "resident-registration", "public-service", False,
                                        "app", "principal")
    assert parse_compact(after.event.receipt).header["kid"] == new_receipt
    assert node_a.consents.verify_chain().ok and node_b.consents.verify_chain().ok


def test_what_a_node_signed_with_a_new_key_verifies_on_the_other_at_once(two_nodes):
    node_a, node_b = two_nodes
    ticks = Ticks()  # stands still: node b's cache never runs out in this test
    for ring in (node_b.wallet.keyring, node_b.consents.keyring):
        ring.monotonic = ticks
        ring.refresh()
    new_issuer = node_a.wallet.keyring.rotate().kid
    new_receipt = node_a.consents.keyring.rotate().kid
    token, _ = redeem_offer(node_a.wallet, Holder(), key="after-rotation")
    assert parse_compact(token).header["kid"] == new_issuer
    assert node_b.wallet.verify(token).valid  # an unknown kid is looked up in the database
    change = node_a.consents.set_consent("citizen-0002", "hf", "resident-registration", "public-service", True,
                                         "app", "principal")
    assert parse_compact(change.event.receipt).header["kid"] == new_receipt
    assert node_b.consents.read_receipt(change.event.receipt)["event"]["seq"] == change.event.seq
    assert node_b.consents.verify_chain().ok
    # Having looked the key up, node b signs with it too.
    assert node_b.consents.keyring.active_key().kid == new_receipt


def test_nodes_starting_at_once_on_an_empty_database_make_one_key_of_each_kind(tmp_path, database_url):
    nodes = [Services(make_settings(tmp_path / f"node-{n}", database_url=database_url, secret_key=SHARED_SECRET,
                                    load_models=False, demo=False)) for n in range(3)]
    try:
        run_together([state.initialize for state in nodes])
        with nodes[0].db.read() as conn:
            purposes = [row.purpose for row in conn.execute(select(signing_keys.c.purpose))]
        assert sorted(purposes) == [RECEIPT_KEYS, ISSUER_KEYS]
        assert len({json.dumps(state.wallet.keyring.jwks(), sort_keys=True) for state in nodes}) == 1
        assert len({json.dumps(state.consents.jwks(), sort_keys=True) for state in nodes}) == 1
    finally:
        for state in nodes:
            state.stop()


def test_the_keys_table_holds_no_private_key_in_the_clear(two_nodes):
    node_a, _ = two_nodes
    with node_a.db.read() as conn:
        rows = [dict(row) for row in conn.execute(select(signing_keys)).mappings()]
    assert len(rows) == 2
    for row in rows:
        public = json.loads(row["public_jwk"])
        assert set(public) == {"kty", "crv", "x", "y"}  # no d (nor p, q, dp, dq, qi, k)
        assert not any(f'"{member}"' in str(value) for value in row.values() for member in ("d", "p", "q", "k"))
        assert "PRIVATE KEY" not in row["private_key_enc"]
        keyring = node_a.wallet.keyring if row["purpose"] == ISSUER_KEYS else node_a.consents.keyring
        scalar = keyring.find(row["kid"]).private_key.private_numbers().private_value.to_bytes(32, "big")
        assert scalar not in base64.urlsafe_b64decode(row["private_key_enc"])


def test_a_node_with_another_secret_key_refuses_to_start_in_one_line(two_nodes, tmp_path):
    env = {**os.environ, "MINWON_DATA_DIR": str(tmp_path / "node-c"), "MINWON_LOG_LEVEL": "ERROR",
           "MINWON_DATABASE_URL": two_nodes[0].settings.database_url, "MINWON_SECRET_KEY": "not-the-clusters-secret"}
    result = subprocess.run([sys.executable, "app.py", "init"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("integrity check failed: the ") and "MINWON_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr and "not-the-clusters-secret" not in result.stderr


# -- the consent ledger -----------------------------------------------------------------------------------------


def test_concurrent_consent_changes_on_both_nodes_keep_one_chain(tmp_path, database_url):
    nodes = [node(tmp_path, name, database_url, demo=False) for name in ("node-a", "node-b")]
    ledgers = [state.consents for state in nodes]
    threads_per_node, rounds = 4, 3
    writers = 2 * threads_per_node
    shared, own = "citizen-shared", [f"citizen-own-{n}" for n in range(writers)]
    for citizen_id in (shared, *own):
        nodes[0].accounts.create_citizen(citizen_id, "시민", "ko-KR", "1111")
    terms = ledgers[0].terms
    pairs = list(itertools.product(terms.recipients, terms.data_items))[:writers]

    def toggler(n: int) -> Callable[[], None]:
        ledger = ledgers[n % 2]  # writers alternate between the nodes
        recipient, item = pairs[n]

        def toggle() -> None:
            for i in range(rounds):
                # One citizen's different consents, from every writer …
                assert ledger.set_consent(shared, recipient, item, "public-service", i % 2 == 0, "app",
                                          "principal").changed
                # … and each writer's own citizen.
                assert ledger.set_consent(own[n], "nts", "income", "public-service", i % 2 == 0, "app",
                                          "principal").changed

        return toggle

    try:
        run_together([toggler(n) for n in range(writers)])
        # Everyone gives the same new consent at the same moment: it is given once …
        same = ("nhis", "income", "public-service")
        gave = run_together([lambda ledger=ledgers[n % 2]: ledger.set_consent(own[0], *same, True, "app", "principal")
                             for n in range(writers)])
        assert sum(change.changed for change in gave) == 1
        # … and one retried request, sent to both nodes at once, makes one change that every answer names.
        retried = run_together([lambda ledger=ledgers[n % 2]: ledger.set_consent(
            own[1], *same, True, "app", "principal", idempotency_key="same-request") for n in range(writers)])
        assert sum(not change.replayed for change in retried) == 1
        assert len({change.event.seq for change in retried}) == 1
        expected = writers * rounds * 2 + 2
        for ledger in ledgers:
            report = ledger.verify_chain()
            assert report.ok and report.events == expected, report.describe()
        with nodes[1].db.read() as conn:
            receipts = [row.receipt for row in conn.execute(select(consent_events.c.receipt))]
        assert len(receipts) == expected
        for receipt in receipts:
            assert ledgers[0].read_receipt(receipt) == ledgers[1].read_receipt(receipt)
    finally:
        for state in nodes:
            state.stop()


# -- the migration of key files -----------------------------------------------------------------------------------


def key_files(data_dir, relative: str) -> list[str]:
    """The kids of an older version's key files, oldest first."""
    records = [json.loads(path.read_text()) for path in (data_dir / relative).glob("*.json")]
    return [record["kid"] for record in sorted(records, key=lambda record: record["created_at"])]


def stored_kids(state: Services, purpose: str) -> list[str]:
    with state.db.read() as conn:
        return [row.kid for row in conn.execute(select(signing_keys.c.kid).where(signing_keys.c.purpose == purpose)
                                                .order_by(signing_keys.c.generation))]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_key_files_of_an_older_version_move_into_the_database_once(tmp_path, backend, request):
    data_dir = v1_data_dir(tmp_path)
    issuer_files = key_files(data_dir, "issuer-keys")
    receipt_files = key_files(data_dir, "consent-receipts/issuer-keys")
    assert issuer_files and receipt_files
    settings = v1_services(data_dir).settings
    if backend == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
        copy_sqlite_to(data_dir / "minwon.sqlite3", url)
        settings = replace(settings, database_url=url)
    # Up to version 2 first, as the previous release left databases: the receipt keys came in with the re-sealing
    # of the chain, which needed them; the issuer keys were still files.
    earlier = Database(settings.database_url)
    earlier.upgrade(TABLE_MODULES, MIGRATIONS[:1], MigrationContext(FIXTURE_V1_KEY.encode(), data_dir))
    earlier.dispose()
    state = Services(settings)
    try:
        assert state.db.current_version() == 2 and stored_kids(state, ISSUER_KEYS) == []
        state.initialize()  # version 3
        assert state.db.current_version() == SCHEMA_VERSION
        assert stored_kids(state, ISSUER_KEYS) == issuer_files
        assert stored_kids(state, RECEIPT_KEYS) == receipt_files
        # The newest file key still signs, and the credential issued before the upgrade verifies.
        assert state.wallet.keyring.active_key().kid == issuer_files[-1]
        with state.db.read() as conn:
            credential = conn.execute(select(issued_credentials)).mappings().one()
        token = FieldCipher(FIXTURE_V1_KEY.encode()).decrypt(
            credential["credential_sealed"], sealed_place(issued_credentials, "credential_sealed", credential["id"]))
        assert parse_compact(token).header["kid"] in issuer_files
        checks = {check.name: check.ok for check in state.wallet.verify(token).checks}
        assert checks["key"] is True and checks["signature"] is True
        assert state.consents.verify_chain().events == FIXTURE_V1_EVENTS
    finally:
        state.stop()
    # The files are not read again: without them, a node publishes and verifies the same.
    shutil.rmtree(data_dir / "issuer-keys")
    shutil.rmtree(data_dir / "consent-receipts")
    again = Services(settings)
    try:
        again.initialize()
        assert stored_kids(again, ISSUER_KEYS) == issuer_files and stored_kids(again, RECEIPT_KEYS) == receipt_files
        assert again.consents.verify_chain().ok
        assert [k["kid"] for k in again.wallet.keyring.jwks()["keys"]] == issuer_files[::-1]
    finally:
        again.stop()
    if backend == "sqlite":
        with sqlite3.connect(data_dir / "minwon.sqlite3") as conn:
            tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
        assert "rate_limits" in tables and "wallet_rate_limits" not in tables
