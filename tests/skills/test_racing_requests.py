"""Copies of one request (the same `request_id`) reaching two nodes on one database at the same moment (SQLite and
PostgreSQL): one change is made, and every copy gets the same reply. Two threads per node post each copy over
/v1/converse, released together by a barrier, for turns that change state: a consent turned off and on again
after its confirmation (one ledger event each) and a document sent to the wallet (one offer, one tx_code).
And the claims behind it: a lapsed one is taken over, a live one elsewhere is waited for."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from domain.clock import utc_now
from domain.consent_ledger import consent_events, consent_records
from skills import sessions as sessions_module
from skills.sessions import turn_claims
from storage import StorageUnavailable
from tests.conftest import DEMO_DEVICE_TOKENS, Conversation
from tests.nodes import node_apps, run_together
from wallet_bridge.tables import offers

PRE_AUTHORIZED = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
COPIES_PER_NODE = 2
DEMO_PIN = "1357"


@pytest.fixture()
def apps(tmp_path, database_url):
    with node_apps(tmp_path, database_url) as both:
        yield both


def speaker(app) -> Conversation:
    return Conversation(app.test_client(), "demo-user-ko", token=DEMO_DEVICE_TOKENS["demo-user-ko"])


def post_copies(apps, body: dict) -> list[tuple[int, dict]]:
    """The same body posted by COPIES_PER_NODE threads on each node at once; each copy's (status, JSON)."""

    def post(app) -> tuple[int, dict]:
        response = app.test_client().post("/v1/converse", json=body,
                                          headers={"Authorization": f"Bearer {DEMO_DEVICE_TOKENS['demo-user-ko']}"})
        return response.status_code, response.get_json()

    return run_together([lambda app=app: post(app) for app in apps for _ in range(COPIES_PER_NODE)])


def count(app, table, *where) -> int:
    with app.extensions["minwon"].db.read() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def consent_status(app) -> str:
    with app.extensions["minwon"].db.read() as conn:
        return conn.execute(select(consent_records.c.status).where(
            consent_records.c.citizen_id == "citizen-0001", consent_records.c.recipient == "nhis",
            consent_records.c.data_item == "income")).scalar()


def test_a_confirmed_consent_change_raced_on_two_nodes_is_made_once_with_one_reply(apps):
    first, second = apps
    talk = speaker(first)
    talk.say("국민건강보험공단에 소득 정보 공유 꺼줘")
    assert talk.say(DEMO_PIN)["expects"] == "confirmation"
    for round_number, (change, done, status) in enumerate([
        (None, "국민건강보험공단에 소득 정보 공유를 껐어요.", "withdrawn"),
        ("국민건강보험공단에 소득 정보 공유 켜줘", "국민건강보험공단에 소득 정보 공유를 켰어요.", "active"),
        ("국민건강보험공단에 소득 정보 공유 꺼줘", "국민건강보험공단에 소득 정보 공유를 껐어요.", "withdrawn"),
    ]):
        if change is not None:  # the next change is asked for on the other node: the session is shared
            talk.client = (first, second)[round_number % 2].test_client()
            assert talk.say(change)["expects"] == "confirmation"
        events_before = count(first, consent_events)
        replies = post_copies(apps, {"text": "네", "session_id": talk.session_id,
                                     "request_id": f"race-consent-{round_number}"})
        assert all(status_code == 200 for status_code, _ in replies), replies
        assert all(reply == replies[0][1] for _, reply in replies)  # every copy: the same reply, field by field
        assert replies[0][1]["speech"].startswith(done)
        assert count(first, consent_events) == events_before + 1  # one change, not one per copy
        assert consent_status(second) == status
    assert count(second, turn_claims) == 0  # every claim ended with its stored reply
    report = second.extensions["minwon"].consents.verify_chain()
    assert report.ok, report.describe()


def test_a_wallet_send_raced_on_two_nodes_makes_one_offer_and_reads_one_code(apps):
    first, second = apps
    talk = speaker(second)
    assert talk.say("내 증명서 상태 알려줘")["expects"] == "pin"
    talk.say(DEMO_PIN)  # the PIN is given in this session before the send is asked for
    assert talk.say("등본 지갑으로 보내줘")["expects"] == "confirmation"
    # The confirmation is the turn that sends: its copies race.
    replies = post_copies(apps, {"text": "네", "session_id": talk.session_id, "request_id": "race-wallet"})
    assert all(status_code == 200 for status_code, _ in replies), replies
    assert all(reply == replies[0][1] for _, reply in replies)
    assert "전자지갑으로 보냈어요" in replies[0][1]["speech"]
    # One document offer (the demo seeding's mobile ID offer aside).
    assert count(first, offers, offers.c.citizen_id == "citizen-0001", offers.c.doc_type != "mobile-id") == 1
    # The code every copy read out is the one offer's tx_code: it redeems that offer's pre-authorized code.
    wallet = first.extensions["minwon"].wallet
    (entry,) = [e for e in wallet.offers.pending_for_wallet("wallet-0001")
                if e["credential_offer"]["credential_configuration_ids"] != ["MobileIdCredential"]]
    grant = entry["credential_offer"]["grants"][PRE_AUTHORIZED]
    tx_code = replies[0][1]["display"]["body"].split()[0]
    token = wallet.offers.exchange_token({"grant_type": PRE_AUTHORIZED, "pre-authorized_code": grant[
        "pre-authorized_code"], "tx_code": tx_code}, "127.0.0.1")
    assert token["token_type"] == "Bearer"


def leave_claim(stores, user_id: str, request_id: str, owner: str, seconds_left: float) -> None:
    with stores.db.transaction() as conn:
        conn.execute(turn_claims.insert().values(user_id=user_id, request_id=request_id, owner=owner,
                                                 claimed_until=utc_now() + timedelta(seconds=seconds_left)))


def test_a_lapsed_claim_of_a_node_that_died_is_taken_over(stores):
    request_id = "lapsed-" + secrets.token_hex(4)
    leave_claim(stores, "user-claims", request_id, "node-that-died", seconds_left=-1)
    assert stores.sessions.claim_request("user-claims", None, request_id) is None  # this caller answers it
    with stores.db.read() as conn:
        owner = conn.execute(select(turn_claims.c.owner).where(turn_claims.c.request_id == request_id)).scalar()
    assert owner == stores.sessions.node_id
    stores.sessions.release_claim("user-claims", request_id, answered=False)
    assert count_claims(stores, request_id) == 0


def test_a_copy_waits_for_a_live_claim_elsewhere_and_then_answers_503(stores, monkeypatch):
    request_id = "live-" + secrets.token_hex(4)
    leave_claim(stores, "user-claims", request_id, "node-still-answering", seconds_left=20)
    monkeypatch.setattr(sessions_module, "CLAIM_WAIT_S", 0.3)
    with pytest.raises(StorageUnavailable):
        stores.sessions.claim_request("user-claims", None, request_id)
    assert count_claims(stores, request_id) == 1  # the other node's claim is left alone


def count_claims(stores, request_id: str) -> int:
    with stores.db.read() as conn:
        return conn.execute(select(func.count()).select_from(turn_claims).where(
            turn_claims.c.request_id == request_id)).scalar()
