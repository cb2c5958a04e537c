"""Notifications (issue 18) on real SQLite and PostgreSQL: raised exactly once by the scan and by agency reports,
whatever is retried, repeated or raced; the scan lease held by one node at a time; settings and quiet hours."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select

from domain.certificates import Certificate, certificates
from domain.clock import korean_today
from domain.notifications import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_EXPIRING,
    CERTIFICATE_ISSUED,
    CERTIFICATE_REFUSED,
    CONSENT_ENDING,
    SCAN_LEASE,
    Notifications,
    NotificationSettings,
    notifications,
    parse_clock_time,
)
from migrations import MIGRATIONS, SCHEMA_VERSION, TABLE_MODULES
from storage import Database, MigrationContext
from tests.nodes import run_together, running_nodes


def add_certificate(stores, citizen_id: str, doc_type: str, state: str, valid_days: int | None = None) -> str:
    today = korean_today()
    certificate_id = f"cert-t-{secrets.token_hex(4)}"
    stores.certificates.add(Certificate(
        id=certificate_id, citizen_id=citizen_id, doc_type=doc_type, state=state,
        applied_on=today - timedelta(days=3), issued_on=today - timedelta(days=20) if state == "issued" else None,
        valid_until=None if valid_days is None else today + timedelta(days=valid_days)))
    return certificate_id


def rows_for(stores, citizen_id: str) -> list[tuple[str, str, str]]:
    with stores.db.read() as conn:
        return sorted(tuple(r) for r in conn.execute(select(
            notifications.c.kind, notifications.c.subject, notifications.c.event).where(
            notifications.c.citizen_id == citizen_id)).all())


def test_schema_version_is_seven():
    assert SCHEMA_VERSION == 7


def test_demo_seeding_makes_the_income_certificate_reminder_due(stores):
    kinds = {(n.kind, n.subject) for n in stores.notifications.for_citizen("citizen-0001")}
    assert (CERTIFICATE_EXPIRING, "cert-0001-iac") in kinds
    # The health insurance eligibility certificate ended five days ago: told once that it has expired.
    assert (CERTIFICATE_EXPIRED, "cert-0001-hie") in kinds
    # The resident registration copy is valid for two more months: nothing yet.
    assert not any(subject == "cert-0001-rrc" for _, subject in kinds)


def test_scan_raises_each_due_notification_once(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    soon = add_certificate(stores, citizen_id, "resident-registration-copy", "issued", valid_days=3)
    gone = add_certificate(stores, citizen_id, "income-amount-certificate", "issued", valid_days=-1)
    add_certificate(stores, citizen_id, "vaccination-certificate", "issued", valid_days=40)
    add_certificate(stores, citizen_id, "family-relation-certificate", "in_progress")
    assert stores.notify_scan() >= 2
    expected = [(CERTIFICATE_EXPIRED, gone, (korean_today() - timedelta(days=1)).isoformat()),
                (CERTIFICATE_EXPIRING, soon, (korean_today() + timedelta(days=3)).isoformat())]
    assert rows_for(stores, citizen_id) == sorted(expected)
    # Again, and from a second scanner racing the first: nothing new.
    assert run_together([stores.notify_scan, stores.notify_scan]) == [0, 0]
    assert rows_for(stores, citizen_id) == sorted(expected)


def test_a_renewed_certificate_is_reminded_again_for_its_new_end(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    certificate_id = add_certificate(stores, citizen_id, "resident-registration-copy", "issued", valid_days=5)
    stores.notify_scan()
    with stores.db.transaction() as conn:
        conn.execute(certificates.update().where(certificates.c.id == certificate_id)
                     .values(valid_until=korean_today() + timedelta(days=12)))
    stores.notify_scan()
    assert [event for kind, subject, event in rows_for(stores, citizen_id) if subject == certificate_id] == sorted(
        [(korean_today() + timedelta(days=5)).isoformat(), (korean_today() + timedelta(days=12)).isoformat()])


def test_consent_ending_within_thirty_days(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    now = datetime.now(UTC)
    stores.consents.set_consent(citizen_id, "nhis", "income", "public-service", True, channel="test", actor="test",
                                valid_until=now + timedelta(days=20))
    stores.consents.set_consent(citizen_id, "nts", "income", "public-service", True, channel="test", actor="test",
                                valid_until=now + timedelta(days=200))
    stores.notify_scan()
    found = [r for r in rows_for(stores, citizen_id) if r[0] == CONSENT_ENDING]
    assert len(found) == 1
    items = stores.notifications.for_citizen(citizen_id)
    assert items[0].facts["recipient"] == "nhis" and items[0].facts["data_item"] == "income"


def test_agency_report_is_applied_once_and_retries_change_nothing(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    certificate_id = add_certificate(stores, citizen_id, "family-relation-certificate", "in_progress")
    until = korean_today() + timedelta(days=90)
    request_id = "req-" + secrets.token_hex(4)
    results = run_together([lambda: stores.report_certificate_state("scourt", certificate_id, request_id, "issued",
                                                                    until) for _ in range(4)])
    assert sorted(r.outcome for r in results) == ["applied", "repeated", "repeated", "repeated"]
    assert stores.report_certificate_state("scourt", certificate_id, request_id, "issued", until).outcome == "repeated"
    # The same news under another request id is not news: still one notification.
    assert stores.report_certificate_state("scourt", certificate_id, "other-" + request_id, "issued",
                                           until).outcome == "repeated"
    certificate = next(c for c in stores.certificates.for_citizen(citizen_id) if c.id == certificate_id)
    assert certificate.state == "issued" and certificate.valid_until == until
    assert certificate.issued_on == korean_today()
    assert rows_for(stores, citizen_id) == [(CERTIFICATE_ISSUED, certificate_id, "issued")]


def test_agency_report_conflicts_and_foreign_documents(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    certificate_id = add_certificate(stores, citizen_id, "family-relation-certificate", "in_progress")
    # Another agency's document looks exactly like an unknown one.
    assert stores.report_certificate_state("nts", certificate_id, "r-1", "issued", None).outcome == "not_found"
    assert stores.report_certificate_state("scourt", "cert-unknown", "r-1", "issued", None).outcome == "not_found"
    assert rows_for(stores, citizen_id) == []
    assert stores.report_certificate_state("scourt", certificate_id, "r-1", "refused", None).outcome == "applied"
    # The same request id for another state, and a new state for a finished application: refused, nothing changes.
    assert stores.report_certificate_state("scourt", certificate_id, "r-1", "issued", None).outcome == "conflict"
    assert stores.report_certificate_state("scourt", certificate_id, "r-2", "issued", None).outcome == "conflict"
    assert rows_for(stores, citizen_id) == [(CERTIFICATE_REFUSED, certificate_id, "refused")]
    assert next(c for c in stores.certificates.for_citizen(citizen_id) if c.id == certificate_id).state == "refused"


def test_mark_read_touches_only_the_citizens_own(stores, stores_citizen):
    owner, _ = stores_citizen()
    other, _ = stores_citizen()
    add_certificate(stores, owner, "resident-registration-copy", "issued", valid_days=2)
    stores.notify_scan()
    [item] = stores.notifications.for_citizen(owner)
    assert stores.notifications.mark_read(other, [item.id], via="app") == 0
    assert stores.notifications.unread_count(owner) == 1
    assert stores.notifications.mark_read(owner, [item.id], via="app") == 1
    first = stores.notifications.get(owner, item.id)
    assert stores.notifications.mark_read(owner, [item.id], via="voice") == 0
    again = stores.notifications.get(owner, item.id)
    assert first is not None and again is not None and again.read_at == first.read_at and again.read_via == "app"


def test_settings_round_trip_and_spoken_headlines_off_hide_the_count(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    add_certificate(stores, citizen_id, "resident-registration-copy", "issued", valid_days=2)
    stores.notify_scan()
    assert stores.notifications.headline_count(citizen_id) == 1
    stores.notifications.save_settings(citizen_id, NotificationSettings(False, ("kakao",), "22:30", "07:00"))
    assert stores.notifications.settings(citizen_id) == NotificationSettings(False, ("kakao",), "22:30", "07:00")
    assert stores.notifications.headline_count(citizen_id) == 0
    assert stores.notifications.unread_count(citizen_id) == 1


def test_quiet_hours_wrap_past_midnight():
    quiet = NotificationSettings()
    kst = timedelta(hours=9)
    assert quiet.in_quiet_hours(datetime(2026, 1, 1, 22, 0, tzinfo=UTC) - kst)
    assert quiet.in_quiet_hours(datetime(2026, 1, 1, 7, 59, tzinfo=UTC) - kst)
    assert not quiet.in_quiet_hours(datetime(2026, 1, 1, 8, 0, tzinfo=UTC) - kst)
    assert not quiet.in_quiet_hours(datetime(2026, 1, 1, 20, 59, tzinfo=UTC) - kst)
    # Pushes are held until the quiet hours end: the same morning after midnight, the next morning before it.
    assert quiet.quiet_until(datetime(2026, 1, 1, 22, 0, tzinfo=UTC) - kst) == datetime(2026, 1, 2, 8, 0,
                                                                                          tzinfo=UTC) - kst
    assert quiet.quiet_until(datetime(2026, 1, 1, 3, 0, tzinfo=UTC) - kst) == datetime(2026, 1, 1, 8, 0,
                                                                                         tzinfo=UTC) - kst
    assert quiet.quiet_until(datetime(2026, 1, 1, 12, 0, tzinfo=UTC) - kst) is None
    assert NotificationSettings(quiet_start="00:00", quiet_end="00:00").quiet_until(datetime(2026, 1, 1, tzinfo=UTC)) \
        is None
    for bad in ("24:00", "9:00", "21-00", "ab:cd", ""):
        with pytest.raises(ValueError):
            parse_clock_time(bad)


def test_the_scan_lease_is_held_by_one_node_at_a_time(postgres, tmp_path):
    """Two nodes on one PostgreSQL database: one runs the scan, the other waits its turn; when the holder stops
    (or its lease lapses), the other takes over; a restart repeats no notification."""
    url = postgres.new_database()
    with running_nodes(tmp_path, url) as (first, second):
        seeded = first.notifications.for_citizen("citizen-0001")
        assert {n.subject for n in seeded} >= {"cert-0001-iac", "cert-0001-hie"}
        results = run_together([first.scan_if_leader, second.scan_if_leader])
        assert sorted(r is None for r in results) == [False, True]  # exactly one node scanned
        leader, follower = (first, second) if results[0] is not None else (second, first)
        assert follower.scan_if_leader() is None
        assert leader.scan_if_leader() == 0  # renewed by its holder; nothing new to raise
        leader.stop()
        assert follower.scan_if_leader() == 0  # handed on at the stop, and nothing repeated
        with follower.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(notifications).where(
                notifications.c.citizen_id == "citizen-0001")).scalar() == len(seeded)


def test_a_lapsed_lease_is_taken_over(database_url, tmp_path):
    db = Database(database_url)
    db.upgrade(TABLE_MODULES, MIGRATIONS, MigrationContext(b"k" * 32, tmp_path))
    now = [datetime(2026, 3, 1, tzinfo=UTC)]
    store = Notifications(db, clock=lambda: now[0])
    assert store.claim_lease(SCAN_LEASE, "node-a", timedelta(minutes=10))
    assert not store.claim_lease(SCAN_LEASE, "node-b", timedelta(minutes=10))
    now[0] += timedelta(minutes=11)  # node-a died: its lease lapses
    assert store.claim_lease(SCAN_LEASE, "node-b", timedelta(minutes=10))
    assert not store.claim_lease(SCAN_LEASE, "node-a", timedelta(minutes=10))
    db.dispose()


def test_upgrade_from_version_four_adds_the_tables(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'v4.sqlite3'}")
    context = MigrationContext(b"k" * 32, tmp_path)
    db.upgrade(TABLE_MODULES, MIGRATIONS[:3], context)  # a database at version 4
    with db.transaction() as conn:
        conn.exec_driver_sql("ALTER TABLE wallet_credentials DROP COLUMN suspended_at")
    with db.transaction() as conn:
        for table in ("push_addresses", "notification_pushes", "notifications", "notification_settings", "scheduler_leases",
                      "certificate_state_reports"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
    assert db.current_version() == 4
    assert db.upgrade(TABLE_MODULES, MIGRATIONS, context) == SCHEMA_VERSION
    with db.read() as conn:
        assert {"notifications", "notification_settings", "scheduler_leases",
                "certificate_state_reports", "notification_pushes", "push_addresses"} <= set(inspect(conn).get_table_names())
        assert "suspended_at" in {c["name"] for c in inspect(conn).get_columns("wallet_credentials")}
    db.dispose()


def test_dates_in_facts_are_iso(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    add_certificate(stores, citizen_id, "resident-registration-copy", "issued", valid_days=1)
    stores.notify_scan()
    [item] = stores.notifications.for_citizen(citizen_id)
    assert date.fromisoformat(item.facts["date"]) == korean_today() + timedelta(days=1)


def test_an_offer_unclaimed_for_a_day_is_told_once(database_url, tmp_path):
    """The demo seeding puts a mobile ID offer into wallet-0001; a day later nobody has collected it."""
    from domain.notifications import OFFER_UNCLAIMED
    from services import Services
    from tests.nodes import node_settings
    from wallet_bridge.notices import SOURCES

    state = Services(node_settings(tmp_path, database_url))
    try:
        state.initialize()
        assert not [n for n in state.notifications.for_citizen("citizen-0001") if n.kind == OFFER_UNCLAIMED]
        later = Notifications(state.db, clock=lambda: datetime.now(UTC) + timedelta(hours=25))
        assert later.scan(SOURCES) >= 1
        assert later.scan(SOURCES) == 0
        unclaimed = [n for n in state.notifications.for_citizen("citizen-0001") if n.kind == OFFER_UNCLAIMED]
        assert len(unclaimed) == 1 and set(unclaimed[0].facts) == {"doc_type"}
    finally:
        state.stop()


def test_each_suspension_of_a_wallet_credential_is_told_once_and_a_revocation_once(tmp_path):
    """A credential really issued to the demo wallet (the in-process OID4VCI flow): suspended, told once however
    often the scan runs or the suspension is repeated; reinstated and suspended again, told again; revoked, told."""
    from domain.notifications import CREDENTIAL_REVOKED, CREDENTIAL_SUSPENDED
    from services import Services
    from tests.conftest import make_settings
    from tests.wallet_bridge.conftest import Holder, redeem_offer

    state = Services(make_settings(tmp_path, load_models=False))
    try:
        state.initialize()
        redeem_offer(state.wallet, Holder())
        [credential] = state.wallet.status_control.for_citizen("citizen-0001")
        control = state.wallet.status_control

        def told() -> list[tuple[str, str]]:
            return [(n.kind, n.event) for n in state.notifications.for_citizen("citizen-0001")
                    if n.subject == credential.id]

        state.notify_scan()
        assert told() == []
        control.suspend(credential.id)
        control.suspend(credential.id)  # a retried suspension is the same one
        state.notify_scan()
        state.notify_scan()
        [first] = told()
        assert first[0] == CREDENTIAL_SUSPENDED and first[1].startswith("suspended:")
        control.resume(credential.id)
        state.notify_scan()
        assert told() == [first]
        control.suspend(credential.id)
        state.notify_scan()
        suspensions = [event for kind, event in told() if kind == CREDENTIAL_SUSPENDED]
        assert len(suspensions) == 2 and len(set(suspensions)) == 2
        control.revoke(credential.id)
        state.notify_scan()
        state.notify_scan()
        assert [event for kind, event in told() if kind == CREDENTIAL_REVOKED] == ["revoked"]
    finally:
        state.stop()
