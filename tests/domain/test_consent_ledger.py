"""The consent ledger: the hash chain and its verification command, receipts, expiry and renewal,
one transaction per change, and writers in parallel; on SQLite and on PostgreSQL (`database_url`)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from app import create_app
from domain.clock import utc_now
from domain.consent_ledger import GENESIS_HASH
from domain.crypto import parse_compact, public_key_from_jwk, signature_is_valid
from tests.conftest import DEMO_DEVICE_TOKENS, ROOT, Conversation, make_settings


@pytest.fixture()
def own_app(tmp_path, database_url):
    """A separate app (no models) and a fresh database on each backend, so tampering with it leaves the shared
    test database alone."""
    app = create_app(make_settings(tmp_path, database_url=database_url), start=False)
    yield app, tmp_path
    app.extensions["minwon"].stop()


def run_cli(app, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINWON_DEMO": "1", "MINWON_DATA_DIR": str(data_dir), "MINWON_LOG_LEVEL": "ERROR",
           "MINWON_DATABASE_URL": app.extensions["minwon"].settings.database_url}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def tamper_with(app, *statements: str, **params: object) -> None:
    """Someone with write access to the database runs these statements behind the service's back."""
    with app.extensions["minwon"].db.transaction() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def withdraw_by_voice(app) -> None:
    talk = Conversation(app.test_client(), "demo-user-ko", token=DEMO_DEVICE_TOKENS["demo-user-ko"])
    talk.say("국민건강보험공단에 소득 정보 공유 꺼줘")
    talk.say("1357")
    assert talk.say("네")["speech"].startswith("국민건강보험공단에 소득 정보 공유를 껐어요.")


def test_verification_command_finds_an_edited_event(own_app):
    app, data_dir = own_app
    withdraw_by_voice(app)
    ok = run_cli(app, data_dir, "verify-consent-chain")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "consent chain ok: 5 events"  # 4 seeded + the withdrawal
    # Someone rewrites history: the withdrawal becomes a consent.
    tamper_with(app, "UPDATE consent_events SET event = 'given' WHERE seq = 5")
    broken = run_cli(app, data_dir, "verify-consent-chain")
    assert broken.returncode == 1
    assert broken.stdout.startswith("consent chain broken at event 5 (record consent-")
    assert "content or its record's identity was changed" in broken.stdout


@pytest.mark.parametrize(("tamper", "seq", "reason"), [
    ("UPDATE consent_events SET at = '2020-01-01 00:00:00.000000' WHERE seq = 2", 2, "content"),
    ("UPDATE consent_events SET channel = 'app' WHERE seq = 3", 3, "content"),
    ("DELETE FROM consent_events WHERE seq = 4", 5, "event 4 is missing"),
    ("UPDATE consent_events SET prev_hash = hash WHERE seq = 4", 4, "previous event's hash"),
    ("DELETE FROM consent_events WHERE seq = 5", 5, "missing after the last one"),
    ("UPDATE consent_records SET recipient = 'nts' WHERE recipient = 'nhis'", 1, "content"),
    ("UPDATE consent_records SET status = 'active' WHERE status = 'withdrawn' AND recipient = 'hf'", 3, "status"),
    ("UPDATE consent_events SET receipt = (SELECT receipt FROM consent_events WHERE seq = 1) WHERE seq = 2", 2,
     "receipt"),
])
def test_each_kind_of_tampering_is_reported_at_its_first_broken_link(own_app, tamper, seq, reason):
    app, _ = own_app
    withdraw_by_voice(app)
    ledger = app.extensions["minwon"].consents
    assert ledger.verify_chain().ok
    tamper_with(app, tamper)
    report = ledger.verify_chain()
    assert not report.ok and report.broken_seq == seq and reason in report.reason, report


def test_a_rehashed_forgery_still_fails_on_its_receipt(own_app):
    """Editing an event and recomputing its hash (the chain code is public) breaks the next link or the receipt."""
    app, _ = own_app
    withdraw_by_voice(app)
    ledger = app.extensions["minwon"].consents
    last = ledger.events(ledger.records("citizen-0001")[0].id)[-1]
    record = ledger.records("citizen-0001")[0]
    from domain.consent_ledger import event_digest
    forged = event_digest(last.prev_hash, last.seq, record, "given", last.at, last.channel, last.actor,
                          last.valid_until, citizen_binding=ledger.keys.citizen_binding(record.citizen_id))
    tamper_with(app, "UPDATE consent_events SET event = 'given', hash = :forged WHERE seq = :seq",
                "UPDATE consent_chain_head SET hash = :forged", "UPDATE consent_records SET status = 'active' WHERE id = :id",
                forged=forged, seq=last.seq, id=record.id)
    report = ledger.verify_chain()
    assert not report.ok and report.broken_seq == last.seq and "receipt" in report.reason


def test_receipts_are_signed_and_carry_the_27560_fields(own_app):
    app, _ = own_app
    withdraw_by_voice(app)
    ledger = app.extensions["minwon"].consents
    record = next(r for r in ledger.records("citizen-0001") if r.recipient == "nhis")
    events = ledger.events(record.id)
    assert [e.event for e in events] == ["given", "withdrawn"]
    key = public_key_from_jwk(ledger.jwks()["keys"][0])
    for event in events:
        header, claims = verify_es256(event.receipt, key)
        assert header["kid"] == ledger.keyring.active_key().kid
        assert claims["record_id"] == record.id and claims["event"]["type"] == event.event
        assert claims["event"]["hash"] == event.hash and claims["event"]["seq"] == event.seq
        assert claims["principal_id"] == record.principal_id != "citizen-0001"
        assert claims["recipient"] == {"id": "nhis", "name": "국민건강보험공단"}
        assert claims["data_items"] == [{"id": "income", "name": "소득 정보"}]
        assert claims["jurisdiction"] == "KR" and claims["language"] == "ko-KR"
        assert claims["legal_basis"] and claims["notice_url"].startswith("https://")
        assert claims["withdrawal_method"] and claims["controller"]["id"] == "minwon-voice"
        assert claims["validity"]["until"] is not None
        assert claims["event"]["prev_hash"] == event.prev_hash
    assert events[1].channel == "native" and events[1].actor == "principal"
    assert events[0].channel == "seed"


def test_expiry_is_recorded_and_giving_again_renews(own_app):
    app, _ = own_app
    services = app.extensions["minwon"]
    ledger = services.consents
    past = utc_now() - timedelta(days=1)
    services.accounts.create_citizen("citizen-x1", "만료 테스트", "ko-KR", "2580")
    services.accounts.link_user("user-x1", "citizen-x1")
    ledger.set_consent("citizen-x1", "nts", "income", "public-service", True, "app", "principal",
                       valid_until=past)
    services.citizen_data.put("citizen-x1", "income", {"total_income_krw": 1})
    agency = app.test_client()
    nts = {"Authorization": "Bearer demo-agency-key-nts"}
    refused = agency.post("/v1/mydata/share", json={"citizen_id": "citizen-x1", "data_item": "income"}, headers=nts)
    assert refused.status_code == 403
    assert ledger.expire_due("citizen-x1") == 1 and ledger.expire_due("citizen-x1") == 0
    record = ledger.records("citizen-x1")[0]
    assert record.status == "expired"
    talk = Conversation(agency, "user-x1", token=services.devices.issue("user-x1"))
    talk.say("국세청에 소득 정보 공유 켜줘")
    assert talk.say("2580")["expects"] == "confirmation"
    talk.say("네")
    assert [e.event for e in ledger.events(record.id)] == ["given", "expired", "renewed"]
    assert [e.actor for e in ledger.events(record.id)] == ["principal", "system", "principal"]
    assert agency.post("/v1/mydata/share", json={"citizen_id": "citizen-x1", "data_item": "income"},
                       headers=nts).status_code == 200
    assert ledger.verify_chain().ok


def test_a_failed_change_writes_nothing(own_app, monkeypatch):
    app, _ = own_app
    services = app.extensions["minwon"]
    ledger = services.consents
    before = ledger.verify_chain().events

    def fail(*_args, **_kwargs):
        raise RuntimeError("signing device unavailable")

    monkeypatch.setattr("domain.consent_ledger.sign_compact", fail)
    with pytest.raises(RuntimeError):
        ledger.set_consent("citizen-0001", "nhis", "income", "public-service", False, "native", "principal")
    monkeypatch.undo()
    record = next(r for r in ledger.records("citizen-0001") if r.recipient == "nhis")
    assert record.status == "active" and ledger.verify_chain().events == before and ledger.verify_chain().ok


def toggle_in_parallel(ledger, writers: int, rounds: int) -> None:
    """`writers` threads each flip one of Jane's consents `rounds` times, all at once; raises what any raised."""
    errors: list[BaseException] = []

    def toggle(n: int) -> None:
        try:
            for i in range(rounds):
                ledger.set_consent("citizen-0002", ["nhis", "hf", "nts"][n % 3], ["income", "health-insurance"][n % 2],
                                   "public-service", i % 2 == 0, "native", "principal")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=toggle, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_parallel_writers_keep_one_unbroken_chain(own_app):
    app, _ = own_app
    ledger = app.extensions["minwon"].consents
    toggle_in_parallel(ledger, writers=6, rounds=4)
    report = ledger.verify_chain()
    assert report.ok, report.describe()
    assert report.events == 4 + 6 * 4  # the 4 seeded events and every thread's 4 toggles, none lost


def test_receipts_signed_before_a_key_rotation_still_verify(own_app):
    app, data_dir = own_app
    ledger = app.extensions["minwon"].consents
    old_kid = ledger.keyring.active_key().kid
    assert not (data_dir / "consent-receipts").exists()  # the keys are in the database, for every node
    new_kid = ledger.keyring.rotate().kid
    withdraw_by_voice(app)
    kids = [parse_compact(e.receipt).header["kid"] for r in ledger.records("citizen-0001") for e in ledger.events(r.id)]
    assert old_kid in kids and new_kid in kids
    assert [k["kid"] for k in ledger.jwks()["keys"]] == [new_kid, old_kid]
    assert ledger.verify_chain().ok


def test_principal_pseudonym_is_stable_and_not_the_account_id(own_app):
    app, _ = own_app
    ledger = app.extensions["minwon"].consents
    assert ledger.principal_id("citizen-0001") == ledger.principal_id("citizen-0001")
    assert ledger.principal_id("citizen-0001") != ledger.principal_id("citizen-0002")
    assert "citizen" not in ledger.principal_id("citizen-0001") and len(ledger.principal_id("citizen-0001")) == 32


def test_empty_chain_verifies_and_starts_at_genesis(tmp_path, database_url):
    app = create_app(make_settings(tmp_path, demo=False, database_url=database_url), start=False)
    ledger = app.extensions["minwon"].consents
    assert ledger.verify_chain().ok and ledger.verify_chain().events == 0
    app.extensions["minwon"].accounts.create_citizen("c-1", "이름", "ko-KR", "1111")
    change = ledger.set_consent("c-1", "nts", "income", "public-service", True, "app", "principal")
    assert change.event is not None and change.event.prev_hash == GENESIS_HASH and change.event.seq == 1


def verify_es256(token: str, key) -> tuple[dict, dict]:
    """(header, claims) of a receipt whose signature verifies under `key` (fails the test otherwise)."""
    parsed = parse_compact(token)
    assert parsed.header["alg"] == "ES256" and signature_is_valid(parsed, key)
    return parsed.header, parsed.claims()
