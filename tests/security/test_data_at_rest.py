"""Integrity of data at rest: each test is an attack by someone who can write the SQLite file (but does not
hold the service key), and each must be detected or refused.

- The consent chain: moving a record or an event to another citizen, and deleting the last events while
  rewinding the head, are reported by the real `app.py verify-consent-chain` (a subprocess on the data dir).
- Field ciphertexts: a value copied from another row (another citizen's name, data item or wallet code)
  does not decrypt, and the API answers 409 `integrity_check_failed` (never a 500, never the wrong data).
- A database written by schema version 1 (tests/security/fixtures/schema_v1, made by the old code) upgrades,
  re-sealed, and still verifies; a version-1 chain that was already tampered with is not re-sealed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from app import create_app
from domain.consent_ledger import HEAD_TYP, LedgerIntegrityError, consent_chain_head, consent_events
from domain.crypto import FieldCipher, FieldIntegrityError
from domain.mydata import share_requests
from migrations import SCHEMA_VERSION
from services import Services
from settings import Settings
from tests.conftest import DEMO_DEVICE_TOKENS, ROOT, Conversation, make_settings
from tests.domain.test_consent_ledger import toggle_in_parallel
from wallet_bridge.tables import issued_credentials, offers, sealed_place

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "schema_v1"
FIXTURE_V1_KEY = "test-only-secret-key-of-the-schema-v1-fixture"
FIXTURE_V1_EVENTS = 7
AGENCY_NHIS = {"Authorization": "Bearer demo-agency-key-nhis"}
WALLET_0001 = {"Authorization": "Bearer demo-wallet-token-0001"}


# -- helpers ----------------------------------------------------------------------------------------------


@pytest.fixture()
def own_app(tmp_path):
    """An app with the demo data on its own SQLite file, so tampering with it touches no other test."""
    app = create_app(make_settings(tmp_path), start=False)
    yield app, tmp_path
    app.extensions["minwon"].stop()


def verify_cli(data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """`python app.py verify-consent-chain` on the data dir, as an operator runs it."""
    full_env = {**os.environ, "MINWON_DATA_DIR": str(data_dir), "MINWON_LOG_LEVEL": "ERROR", **env}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "verify-consent-chain"], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def tamper(data_dir: Path, *statements: str | tuple[str, tuple]) -> None:
    """Writes straight into the SQLite file, as an attacker with the file (but not the key) can."""
    with sqlite3.connect(data_dir / "minwon.sqlite3") as db:
        db.execute("PRAGMA foreign_keys = OFF")
        for statement in statements:
            sql, params = (statement, ()) if isinstance(statement, str) else statement
            db.execute(sql, params)


def query(data_dir: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(data_dir / "minwon.sqlite3") as db:
        return db.execute(sql, params).fetchall()


def swap(data_dir: Path, table: str, column: str, where_a: str, where_b: str) -> None:
    """Exchanges one column's values between two rows."""
    (a,) = query(data_dir, f"SELECT {column} FROM {table} WHERE {where_a}")[0]
    (b,) = query(data_dir, f"SELECT {column} FROM {table} WHERE {where_b}")[0]
    assert a != b
    tamper(data_dir, (f"UPDATE {table} SET {column} = ? WHERE {where_a}", (b,)),
           (f"UPDATE {table} SET {column} = ? WHERE {where_b}", (a,)))


def record_of(app, citizen_id: str, recipient: str) -> str:
    return next(r.id for r in app.extensions["minwon"].consents.records(citizen_id) if r.recipient == recipient)


# -- the consent chain --------------------------------------------------------------------------------------


def test_the_chain_verifies_before_any_attack(own_app):
    _, data_dir = own_app
    result = verify_cli(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "consent chain ok: 4 events"


def test_moving_a_record_to_another_citizen_is_reported(own_app):
    app, data_dir = own_app
    record = record_of(app, "citizen-0001", "nhis")
    # citizen-0002 now appears to have consented to release their income to NHIS.
    tamper(data_dir, ("UPDATE consent_records SET citizen_id = 'citizen-0002' WHERE id = ?", (record,)))
    result = verify_cli(data_dir)
    assert result.returncode == 1
    assert f"(record {record})" in result.stdout
    assert "principal is not the citizen the record names" in result.stdout


def test_moving_a_record_with_a_matching_pseudonym_still_breaks_its_digest(own_app):
    """Even an attacker who can compute the other citizen's pseudonym (it is in that citizen's receipts) cannot
    move a record: the digest covers the citizen, under a key the attacker does not have."""
    app, data_dir = own_app
    ledger = app.extensions["minwon"].consents
    record = record_of(app, "citizen-0001", "nhis")
    tamper(data_dir, ("UPDATE consent_records SET citizen_id = 'citizen-0002', principal_id = ? WHERE id = ?",
                      (ledger.principal_id("citizen-0002"), record)))
    result = verify_cli(data_dir)
    assert result.returncode == 1
    assert f"(record {record})" in result.stdout and "content or its record's identity was changed" in result.stdout


def test_moving_an_event_to_another_citizens_record_is_reported(own_app):
    app, data_dir = own_app
    ledger = app.extensions["minwon"].consents
    ledger.set_consent("citizen-0002", "nhis", "income", "public-service", True, "app", "principal")
    ledger.set_consent("citizen-0002", "nhis", "income", "public-service", False, "app", "principal")
    theirs = record_of(app, "citizen-0002", "nhis")
    (withdrawal,) = query(data_dir, "SELECT max(seq) FROM consent_events")[0]
    # The withdrawal becomes citizen-0001's: their NHIS record's history now ends "withdrawn".
    mine = record_of(app, "citizen-0001", "nhis")
    tamper(data_dir, ("UPDATE consent_events SET record_id = ? WHERE seq = ?", (mine, withdrawal)),
           ("UPDATE consent_records SET status = 'withdrawn' WHERE id = ?", (mine,)),
           ("UPDATE consent_records SET status = 'active' WHERE id = ?", (theirs,)))
    result = verify_cli(data_dir)
    assert result.returncode == 1
    assert result.stdout.startswith(f"consent chain broken at event {withdrawal} (record {mine})")


def test_deleting_the_last_event_and_rewinding_the_head_is_reported(own_app):
    app, data_dir = own_app
    talk = Conversation(app.test_client(), "demo-user-ko", token=DEMO_DEVICE_TOKENS["demo-user-ko"])
    talk.say("국민건강보험공단에 소득 정보 공유 꺼줘")
    talk.say("1357")
    talk.say("네")
    assert verify_cli(data_dir).stdout.strip() == "consent chain ok: 5 events"
    # The withdrawal is erased: the event, the head row pointing at it, and the record's status all rewound
    # to how they were before, so that the chain, the head row and the records agree with each other.
    (prev_hash,) = query(data_dir, "SELECT hash FROM consent_events WHERE seq = 4")[0]
    record = record_of(app, "citizen-0001", "nhis")
    tamper(data_dir, "DELETE FROM consent_events WHERE seq = 5",
           ("UPDATE consent_chain_head SET seq = 4, hash = ?", (prev_hash,)),
           ("UPDATE consent_records SET status = 'active' WHERE id = ?", (record,)))
    result = verify_cli(data_dir)
    assert result.returncode == 1
    assert result.stdout.strip() == ("consent chain broken at event 5: events are missing after the last one "
                                     "(the signed head is at event 5)")


def test_a_rewound_head_is_not_built_on(own_app):
    """The next change must not append after the rewound head (a new signed head would hide the deletion):
    it is refused with a clear 409, the database is left as it was, and the deletion stays visible."""
    app, data_dir = own_app
    (prev_hash,) = query(data_dir, "SELECT hash FROM consent_events WHERE seq = 3")[0]
    tamper(data_dir, "DELETE FROM consent_events WHERE seq = 4",
           ("UPDATE consent_chain_head SET seq = 3, hash = ?", (prev_hash,)))
    ledger = app.extensions["minwon"].consents
    with pytest.raises(LedgerIntegrityError):
        ledger.set_consent("citizen-0001", "nhis", "income", "public-service", False, "native", "principal")
    client = app.test_client()
    talk = Conversation(client, "demo-user-ko", token=DEMO_DEVICE_TOKENS["demo-user-ko"])
    talk.say("국민건강보험공단에 소득 정보 공유 꺼줘")
    talk.say("1357")
    refused = client.post("/v1/converse", json={"text": "네", "session_id": talk.session_id},
                          headers={"Authorization": "Bearer " + DEMO_DEVICE_TOKENS["demo-user-ko"]})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "integrity_check_failed"
    assert query(data_dir, "SELECT max(seq) FROM consent_events") == [(3,)]
    result = verify_cli(data_dir)
    assert result.returncode == 1 and "the signed head is at event 4" in result.stdout


def test_a_head_signature_from_another_state_is_reported(own_app):
    """Only the ledger's key makes a head: a receipt's signature, or the head's own signature moved onto other
    values, does not pass for one."""
    app, data_dir = own_app
    (receipt,) = query(data_dir, "SELECT receipt FROM consent_events WHERE seq = 4")[0]
    tamper(data_dir, ("UPDATE consent_chain_head SET jws = ?", (receipt,)))
    result = verify_cli(data_dir)
    assert result.returncode == 1
    assert result.stdout.strip() == "consent chain broken at the chain head: its signature does not verify"
    tamper(data_dir, "UPDATE consent_chain_head SET jws = NULL")
    result = verify_cli(data_dir)
    assert result.returncode == 1 and result.stdout.strip() == "consent chain broken at the chain head: it is not signed"


def test_parallel_appends_keep_the_signed_head_on_the_last_event(own_app):
    app, data_dir = own_app
    services = app.extensions["minwon"]
    ledger = services.consents
    toggle_in_parallel(ledger, writers=6, rounds=5)
    with services.db.read() as conn:
        head = conn.execute(select(consent_chain_head)).mappings().one()
        last = conn.execute(select(consent_events).order_by(consent_events.c.seq.desc()).limit(1)).mappings().one()
    claims = ledger.keys.verify(head["jws"], HEAD_TYP)
    assert (claims["seq"], claims["hash"]) == (head["seq"], head["hash"]) == (last["seq"], last["hash"]) == (
        4 + 6 * 5, last["hash"])
    result = verify_cli(data_dir)
    assert result.returncode == 0 and result.stdout.strip() == "consent chain ok: 34 events"


# -- field ciphertexts ----------------------------------------------------------------------------------------


def test_swapped_names_fail_to_decrypt_and_the_api_answers_409(own_app):
    app, data_dir = own_app
    swap(data_dir, "citizens", "name_enc", "id = 'citizen-0001'", "id = 'citizen-0002'")
    accounts = app.extensions["minwon"].accounts
    with pytest.raises(FieldIntegrityError) as caught:
        accounts.citizen("citizen-0001")
    assert "citizens.name_enc" in str(caught.value) and "Jane" not in str(caught.value)
    response = app.test_client().post("/v1/converse", json={"text": "help"},
                                      headers={"Authorization": "Bearer " + DEMO_DEVICE_TOKENS["demo-user-en"]})
    assert response.status_code == 409
    assert response.get_json() == {"error": {"code": "integrity_check_failed", "message": response.get_json()[
        "error"]["message"]}}
    assert "Jane" not in response.get_data(as_text=True) and "홍길동" not in response.get_data(as_text=True)
    # An unlinked speaker and the public FAQ are not affected.
    assert app.test_client().post("/v1/converse", json={"text": "도움말"}).status_code == 200


def test_a_data_item_copied_from_another_citizen_is_not_released(own_app):
    app, data_dir = own_app
    client = app.test_client()
    before = client.post("/v1/mydata/share", json={"citizen_id": "citizen-0001", "data_item": "income"},
                         headers=AGENCY_NHIS)
    assert before.status_code == 200 and before.get_json()["data"]["total_income_krw"] == 41200000
    # citizen-0002's income row now holds citizen-0001's ciphertext, and the other way round.
    swap(data_dir, "mydata_items", "value_enc", "citizen_id = 'citizen-0001' AND data_item = 'income'",
         "citizen_id = 'citizen-0002' AND data_item = 'income'")
    after = client.post("/v1/mydata/share", json={"citizen_id": "citizen-0001", "data_item": "income"},
                        headers=AGENCY_NHIS)
    assert after.status_code == 409 and after.get_json()["error"]["code"] == "integrity_check_failed"
    assert "28500000" not in after.get_data(as_text=True)
    with app.extensions["minwon"].db.read() as conn:
        outcomes = [row.outcome for row in conn.execute(
            select(share_requests.c.outcome).where(share_requests.c.citizen_id == "citizen-0001")
            .order_by(share_requests.c.at))]
    assert outcomes == ["released", "unreadable"]  # recorded as what happened: nothing released


def test_a_data_item_copied_from_another_item_of_the_same_citizen_does_not_open(own_app):
    app, data_dir = own_app
    swap(data_dir, "mydata_items", "value_enc", "citizen_id = 'citizen-0001' AND data_item = 'income'",
         "citizen_id = 'citizen-0001' AND data_item = 'health-insurance'")
    data = app.extensions["minwon"].citizen_data
    with pytest.raises(FieldIntegrityError):
        data.get("citizen-0001", "income")
    with pytest.raises(FieldIntegrityError):
        data.get("citizen-0001", "health-insurance")
    assert data.get("citizen-0001", "resident-registration")["household_members"] == 3


def test_a_wallet_code_copied_from_another_offer_is_left_out_of_the_mailbox(own_app):
    app, data_dir = own_app
    wallet = app.extensions["minwon"].wallet
    client = app.test_client()
    # The demo seeding's mobile ID offer is there from the start; it is not part of the attack.
    seeded = client.get("/v1/wallets/wallet-0001/offers", headers=WALLET_0001).get_json()["offers"]
    first = wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-rrc", "resident-registration-copy",
                                       idempotency_key="attack-a")
    second = wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-vac", "vaccination-certificate",
                                        idempotency_key="attack-b")
    assert len(client.get("/v1/wallets/wallet-0001/offers", headers=WALLET_0001).get_json()["offers"]) == len(
        seeded) + 2
    # The second offer's row gets the first offer's sealed code (and its tx_code sealed where its code was).
    (code,) = query(data_dir, "SELECT code_sealed FROM wallet_offers WHERE id = ?", (first.offer_id,))[0]
    (tx_code,) = query(data_dir, "SELECT tx_code_sealed FROM wallet_offers WHERE id = ?", (first.offer_id,))[0]
    tamper(data_dir, ("UPDATE wallet_offers SET code_sealed = ? WHERE id = ?", (code, second.offer_id)),
           ("UPDATE wallet_offers SET code_sealed = ? WHERE id = ?", (tx_code, first.offer_id)))
    mailbox = client.get("/v1/wallets/wallet-0001/offers", headers=WALLET_0001)
    assert mailbox.status_code == 200 and mailbox.get_json()["offers"] == seeded
    # The retried confirmation that made the offer gets a clear error, not someone else's code.
    with pytest.raises(FieldIntegrityError):
        wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-vac", "vaccination-certificate",
                                   idempotency_key="attack-b")


def test_an_offer_whose_sealed_code_was_copied_is_never_pushed(own_app):
    app, data_dir = own_app
    wallet = app.extensions["minwon"].wallet
    pushed: list[dict] = []

    class Recorder:
        def post(self, url: str, json: dict, **_kwargs: object) -> object:
            pushed.append(json)
            return type("Response", (), {"status_code": 200})()

    wallet.outbox.session = Recorder()
    other = wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-rrc", "resident-registration-copy",
                                       idempotency_key="push-a")
    target = wallet.offers.create_offer("citizen-0001", "wallet-0001", "cert-0001-vac", "vaccination-certificate",
                                        idempotency_key="push-b", push_url="https://wallet.example/push")
    (code,) = query(data_dir, "SELECT code_sealed FROM wallet_offers WHERE id = ?", (other.offer_id,))[0]
    tamper(data_dir, ("UPDATE wallet_offers SET code_sealed = ? WHERE id = ?", (code, target.offer_id)))
    report = wallet.outbox.dispatch_due()
    assert (report.delivered, report.given_up) == (0, 1) and pushed == []
    assert query(data_dir, "SELECT last_status FROM wallet_outbox") == [("integrity check failed",)]


def test_a_field_ciphertext_opens_only_in_its_own_place():
    cipher = FieldCipher(b"k" * 32)
    token = cipher.encrypt("홍길동", ("citizens", "name_enc", "citizen-0001"))
    assert cipher.decrypt(token, ("citizens", "name_enc", "citizen-0001")) == "홍길동"
    for place in [("citizens", "name_enc", "citizen-0002"), ("citizens", "other", "citizen-0001"),
                  ("mydata_items", "name_enc", "citizen-0001"), ("citizens", "name_enc", "citizen-0001", "x")]:
        with pytest.raises(FieldIntegrityError):
            cipher.decrypt(token, place)
    with pytest.raises(FieldIntegrityError):
        cipher.decrypt_unbound(token, ("citizens", "name_enc", "citizen-0001"))  # not a version-1 value
    with pytest.raises(FieldIntegrityError):
        cipher.decrypt("not base64 at all!", ("citizens", "name_enc", "citizen-0001"))
    # ("a|b", "c") and ("a", "b|c") are different places.
    with pytest.raises(FieldIntegrityError):
        cipher.decrypt(cipher.encrypt("x", ("t", "c", "a|b", "c")), ("t", "c", "a", "b|c"))
    with pytest.raises(ValueError):
        cipher.encrypt("x", ("citizens", "name_enc"))  # a place without a row


# -- schema version 1 ---------------------------------------------------------------------------------------


def v1_data_dir(tmp_path: Path) -> Path:
    """A data dir holding the database and keys that the schema-version-1 code wrote (see the fixture's
    make_fixture.py)."""
    data_dir = tmp_path / "v1"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "minwon.sqlite3") as db:
        db.executescript((FIXTURE_V1 / "minwon.sql").read_text(encoding="utf-8"))
    for keys in ("issuer-keys", "consent-receipts/issuer-keys"):
        shutil.copytree(FIXTURE_V1 / keys, data_dir / keys)
    assert query(data_dir, "SELECT version FROM schema_version") == [(1,)]
    return data_dir


def v1_services(data_dir: Path) -> Services:
    return Services(Settings.from_env({"MINWON_DATA_DIR": str(data_dir), "MINWON_SECRET_KEY": FIXTURE_V1_KEY},
                                      load_models=False))


def test_a_version_1_database_upgrades_and_still_verifies(tmp_path):
    data_dir = v1_data_dir(tmp_path)
    old_names = dict(query(data_dir, "SELECT id, name_enc FROM citizens"))
    old_events = query(data_dir, "SELECT seq, hash, receipt FROM consent_events ORDER BY seq")

    result = verify_cli(data_dir, MINWON_SECRET_KEY=FIXTURE_V1_KEY)  # the tool upgrades first, then verifies
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"consent chain ok: {FIXTURE_V1_EVENTS} events"
    assert query(data_dir, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]

    services = v1_services(data_dir)
    services.initialize()  # nothing left to upgrade; demo data is not seeded again
    try:
        ledger = services.consents
        # Re-sealed: every digest is new (it covers the citizen now), the receipts were re-signed with the
        # same facts, and the head is signed.
        new_events = ledger_events(services)
        assert [e["seq"] for e in new_events] == [seq for seq, _, _ in old_events]
        for (_, old_hash, old_receipt), new in zip(old_events, new_events, strict=True):
            assert new["hash"] != old_hash
            old_claims, new_claims = ledger.read_receipt(old_receipt), ledger.read_receipt(new["receipt"])
            assert new_claims["event"]["hash"] == new["hash"]
            assert {**old_claims, "event": None} == {**new_claims, "event": None}
        # Every sealed field was re-sealed with its place and still reads.
        assert services.accounts.citizen("citizen-0001").name == "홍길동 (demo)"
        assert services.accounts.citizen("citizen-0002").name == "Jane Doe (demo)"
        assert all(name_enc != old_names[cid] for cid, name_enc in query(data_dir, "SELECT id, name_enc FROM citizens"))
        assert services.citizen_data.get("citizen-0002", "income")["total_income_krw"] == 28500000
        cipher = FieldCipher(FIXTURE_V1_KEY.encode())
        with services.db.read() as conn:
            offer_rows = conn.execute(select(offers)).mappings().all()
            credential = conn.execute(select(issued_credentials)).mappings().one()
        assert len(offer_rows) == 2
        for row in offer_rows:
            code = services.wallet.offers.credential_offer(row)["grants"][
                "urn:ietf:params:oauth:grant-type:pre-authorized_code"]["pre-authorized_code"]
            assert len(code) > 20
            assert cipher.decrypt(row["tx_code_sealed"], sealed_place(offers, "tx_code_sealed", row["id"])).isdigit()
        token = cipher.decrypt(credential["credential_sealed"],
                               sealed_place(issued_credentials, "credential_sealed", credential["id"]))
        assert token.count(".") == 2
        # The upgraded database keeps working: a change appends after the signed head and verifies.
        ledger.set_consent("citizen-0001", "hf", "resident-registration", "public-service", True, "app", "principal")
        assert ledger.verify_chain().ok and ledger.verify_chain().events == FIXTURE_V1_EVENTS + 1
    finally:
        services.stop()
    # And the attacks above now fail on it too.
    swap(data_dir, "citizens", "name_enc", "id = 'citizen-0001'", "id = 'citizen-0002'")
    with pytest.raises(FieldIntegrityError):
        v1_services(data_dir).accounts.citizen("citizen-0001")


def ledger_events(services: Services) -> list:
    with services.db.read() as conn:
        return list(conn.execute(select(consent_events).order_by(consent_events.c.seq)).mappings().all())


@pytest.mark.parametrize(("attack", "reason"), [
    ("UPDATE consent_events SET channel = 'app' WHERE seq = 3", "content or its record's identity was changed"),
    ("UPDATE consent_records SET citizen_id = 'citizen-0002' WHERE recipient = 'nhis'", "principal is not the citizen"),
    ("DELETE FROM consent_events WHERE seq = 7", "events are missing after the last one"),
])
def test_a_version_1_chain_tampered_with_before_the_upgrade_is_not_resealed(tmp_path, attack, reason):
    """Re-sealing a broken chain would launder the tampering: the upgrade stops, and changes nothing."""
    data_dir = v1_data_dir(tmp_path)
    tamper(data_dir, attack)
    names_before = query(data_dir, "SELECT id, name_enc FROM citizens ORDER BY id")
    result = verify_cli(data_dir, MINWON_SECRET_KEY=FIXTURE_V1_KEY)
    assert result.returncode != 0
    assert "the consent ledger is not re-sealed" in result.stderr and reason in result.stderr
    assert query(data_dir, "SELECT version FROM schema_version") == [(1,)]
    assert query(data_dir, "SELECT id, name_enc FROM citizens ORDER BY id") == names_before  # all or nothing


def test_a_version_1_database_opened_with_another_key_is_not_upgraded(tmp_path):
    data_dir = v1_data_dir(tmp_path)
    result = verify_cli(data_dir, MINWON_SECRET_KEY="some-other-key")
    assert result.returncode != 0 and "MINWON_SECRET_KEY" in result.stderr
    assert query(data_dir, "SELECT version FROM schema_version") == [(1,)]
