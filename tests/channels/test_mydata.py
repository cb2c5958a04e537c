"""The citizen app's consent API (token auth, TS 27560 records, receipts), agency keys, and what is stored."""

from __future__ import annotations

import io
import logging

from sqlalchemy import select

from app import create_app
from domain.citizen_tokens import citizen_app_tokens
from domain.crypto import parse_compact, public_key_from_jwk, signature_is_valid
from domain.mydata import agency_keys, mydata_items
from settings import Settings
from tests.conftest import DEMO_DEVICE_TOKENS, Conversation

KO_TOKEN = {"Authorization": "Bearer demo-citizen-token-0001"}
EN_TOKEN = {"Authorization": "Bearer demo-citizen-token-0002"}


def test_citizen_lists_own_consents_with_27560_fields(client):
    response = client.get("/v1/citizens/citizen-0001/consents", headers=KO_TOKEN)
    assert response.status_code == 200
    consents = {c["recipient"]["id"]: c for c in response.get_json()["consents"]}
    assert set(consents) == {"nhis", "hf", "nts"}
    nhis = consents["nhis"]
    assert nhis["status"] == "active" and nhis["recipient"]["name"] == "국민건강보험공단"
    assert nhis["data_items"] == [{"id": "income", "name": "소득 정보"}]
    for field in ("record_id", "principal_id", "controller", "purpose", "legal_basis", "notice_url", "language",
                  "jurisdiction", "validity", "withdrawal_method", "events"):
        assert nhis[field], field
    assert nhis["jurisdiction"] == "KR" and nhis["principal_id"] != "citizen-0001"
    assert consents["hf"]["status"] == "withdrawn"
    assert [e["type"] for e in consents["hf"]["events"]][:2] == ["given", "withdrawn"]


def test_receipts_verify_with_the_published_key(client):
    consents = client.get("/v1/citizens/citizen-0001/consents", headers=KO_TOKEN).get_json()["consents"]
    hf = next(c for c in consents if c["recipient"]["id"] == "hf")
    body = client.get(f"/v1/citizens/citizen-0001/consents/{hf['record_id']}/receipts", headers=KO_TOKEN).get_json()
    key = public_key_from_jwk(body["jwks"]["keys"][0])
    types = []
    for item in body["receipts"]:
        header, claims = verify_es256(item["receipt"], key)
        assert header["alg"] == "ES256" and header["kid"] == body["jwks"]["keys"][0]["kid"]
        assert claims["record_id"] == hf["record_id"] and claims["event"]["seq"] == item["seq"]
        types.append(claims["event"]["type"])
    assert types[:2] == ["given", "withdrawn"]


def test_a_voice_change_shows_up_in_the_app_with_a_new_receipt(client, conversation):
    before = client.get("/v1/citizens/citizen-0002/consents", headers=EN_TOKEN).get_json()["consents"]
    talk = conversation("demo-user-en")
    talk.say("start sharing my income data with the tax office")
    talk.say("2468")
    assert talk.say("yes")["speech"].startswith("Done: you're now sharing your income data")
    after = client.get("/v1/citizens/citizen-0002/consents", headers=EN_TOKEN).get_json()["consents"]
    nts = next(c for c in after if c["recipient"]["id"] == "nts" and c["data_items"][0]["id"] == "income")
    assert nts["status"] == "active" and nts["language"] == "en-US"
    assert nts["recipient"]["name"] == "the National Tax Service"
    assert nts["events"][-1]["actor"] == "principal" and nts["events"][-1]["channel"] == "native"
    receipts = client.get(f"/v1/citizens/citizen-0002/consents/{nts['record_id']}/receipts",
                          headers=EN_TOKEN).get_json()["receipts"]
    assert len(receipts) == len(nts["events"]) and receipts[-1]["type"] in ("given", "renewed")
    talk.say("stop sharing my income data with the tax office")
    assert talk.say("yes")["speech"].startswith("Done: I stopped sharing")
    assert len(after) >= len(before)


def test_tokens_only_open_their_own_citizen(client):
    assert client.get("/v1/citizens/citizen-0001/consents").status_code == 401
    wrong = client.get("/v1/citizens/citizen-0001/consents", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.get_json()["error"]["code"] == "unauthorized"
    other = client.get("/v1/citizens/citizen-0001/consents", headers=EN_TOKEN)
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "forbidden"
    record_id = client.get("/v1/citizens/citizen-0001/consents", headers=KO_TOKEN).get_json()["consents"][0]["record_id"]
    assert client.get(f"/v1/citizens/citizen-0001/consents/{record_id}/receipts", headers=EN_TOKEN).status_code == 403
    # A record of another citizen is not found under one's own id.
    missing = client.get(f"/v1/citizens/citizen-0002/consents/{record_id}/receipts", headers=EN_TOKEN)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"


def test_issued_token_works_and_only_hashes_are_stored(client, services, new_citizen):
    citizen_id, _ = new_citizen()
    token = services.citizen_tokens.issue(citizen_id)
    response = client.get(f"/v1/citizens/{citizen_id}/consents", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.get_json()["consents"] == []
    with services.db.read() as conn:
        stored = [row[0] for row in conn.execute(select(citizen_app_tokens.c.token_hash))]
        keys = [row[0] for row in conn.execute(select(agency_keys.c.key_hash))]
        data = [row[0] for row in conn.execute(select(mydata_items.c.value_enc))]
    assert token not in stored and "demo-citizen-token-0001" not in stored and len(stored[0]) == 64
    assert "demo-agency-key-nhis" not in keys
    assert not any("41200000" in value or "종로구" in value for value in data)  # data items encrypted at rest


def test_active_consent_without_data_on_record_is_404(client, services, new_citizen):
    citizen_id, _ = new_citizen()
    services.consents.set_consent(citizen_id, "nts", "health-insurance", "public-service", True, "app",
                                         "principal")
    response = client.post("/v1/mydata/share", json={"citizen_id": citizen_id, "data_item": "health-insurance"},
                           headers={"Authorization": "Bearer demo-agency-key-nts"})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "no_data"
    services.citizen_data.put(citizen_id, "health-insurance", {"insured_type": "피부양자"})
    response = client.post("/v1/mydata/share", json={"citizen_id": citizen_id, "data_item": "health-insurance"},
                           headers={"Authorization": "Bearer demo-agency-key-nts"})
    assert response.status_code == 200 and response.get_json()["data"] == {"insured_type": "피부양자"}


def test_agency_keys_from_the_settings(tmp_path):
    settings = Settings.from_env({"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(tmp_path), "MINWON_AGENCY_KEYS": "nts=configured-nts-key"})
    app = create_app(settings, start=False)
    client = app.test_client()
    body = {"citizen_id": "citizen-0001", "data_item": "health-insurance"}
    assert client.post("/v1/mydata/share", json=body,
                       headers={"Authorization": "Bearer configured-nts-key"}).status_code == 200
    # The key names its agency: NTS's key does not fetch what only NHIS may receive.
    assert client.post("/v1/mydata/share", json={"citizen_id": "citizen-0001", "data_item": "income"},
                       headers={"Authorization": "Bearer configured-nts-key"}).status_code == 403


def test_no_token_key_or_personal_value_in_the_logs(app, client, conversation):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.getLogger().handlers[-1].formatter)
    logging.getLogger().addHandler(handler)
    try:
        client.post("/v1/mydata/share", json={"citizen_id": "citizen-0001", "data_item": "income"},
                    headers={"Authorization": "Bearer demo-agency-key-nhis"})
        client.get("/v1/citizens/citizen-0001/consents", headers=KO_TOKEN)
        talk = conversation("demo-user-ko")
        talk.say("내 정보 누가 볼 수 있어")
        talk.say("1357")
    finally:
        logging.getLogger().removeHandler(handler)
    logs = stream.getvalue()
    assert "mydata share" in logs
    for secret in ("demo-agency-key-nhis", "demo-citizen-token-0001", "1357", "41200000", "홍길동", "근로소득"):
        assert secret not in logs


def test_the_spoken_list_matches_the_api(client):
    # The voice flows above and the API read the same ledger: a list by voice matches the API's active records.
    talk = Conversation(client, "demo-user-ko", token=DEMO_DEVICE_TOKENS["demo-user-ko"])
    talk.say("내가 어디에 정보를 공유하고 있어?")
    speech = talk.say("1357")["speech"]
    active = [c for c in client.get("/v1/citizens/citizen-0001/consents", headers=KO_TOKEN).get_json()["consents"]
              if c["status"] == "active"]
    assert all(c["recipient"]["name"] in speech for c in active)


def verify_es256(token: str, key) -> tuple[dict, dict]:
    """(header, claims) of a receipt whose signature verifies under `key` (fails the test otherwise)."""
    parsed = parse_compact(token)
    assert parsed.header["alg"] == "ES256" and signature_is_valid(parsed, key)
    return parsed.header, parsed.claims()
