"""The console's server side: the page (with its security headers and configuration) and the demo-only
speaker overview that feeds the My data panel. Needs only main."""

from __future__ import annotations

import json
import re

from app import create_app
from tests.conftest import make_settings

KO = {"Authorization": "Bearer demo-device-token-ko"}
EN = {"Authorization": "Bearer demo-device-token-en"}


def page_config(html: str) -> dict:
    match = re.search(r'<script id="console-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries its configuration"
    return json.loads(match.group(1))


def test_page_is_served_with_a_strict_content_security_policy(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    config = page_config(response.get_data(as_text=True))
    assert config["demo"] is True
    assert [s["user_id"] for s in config["speakers"]] == ["demo-user-ko", "demo-user-en"]
    # Demo mode (loopback only) hands the page the published demo device tokens.
    assert [s["device_token"] for s in config["speakers"]] == ["demo-device-token-ko", "demo-device-token-en"]
    assert config["max_recording_s"] == 30


def test_static_files_are_served(client):
    for name, kind in [("console.js", "javascript"), ("audio.js", "javascript"), ("capture-worklet.js", "javascript"),
                       ("console.css", "css")]:
        response = client.get(f"/console/static/{name}")
        assert response.status_code == 200 and kind in response.mimetype, name
    assert client.get("/console/static/../console.py").status_code == 404


def test_overview_of_the_korean_demo_citizen(client):
    response = client.get("/v1/console/speakers/demo-user-ko/overview")
    assert response.status_code == 200
    body = response.get_json()
    assert body["citizen"]["id"] == "citizen-0001"
    statuses = {c["id"]: c["status"] for c in body["certificates"]}
    # From data/demo.yaml: the health insurance certificate ran out five days ago, the family one is pending.
    assert statuses["cert-0001-hie"] == "expired" and statuses["cert-0001-frc"] == "in_progress"
    assert statuses["cert-0001-rrc"] == "issued"
    rrc = next(c for c in body["certificates"] if c["id"] == "cert-0001-rrc")
    assert rrc["names"] == {"ko": "주민등록표 등본", "en": "resident registration copy"}
    assert body["wallet"]["id"] == "wallet-0001"
    consents = {(c["recipient"], c["data_item"]): c for c in body["consents"]}
    assert set(consents) == {("nhis", "income"), ("hf", "resident-registration"), ("nts", "health-insurance")}
    # Other tests (the console's own consent test among them) may toggle these consents and put them back,
    # so the seeded start of each history is checked, and the last event against the state.
    hf = consents[("hf", "resident-registration")]
    assert [(e["event"], e["channel"]) for e in hf["history"][:2]] == [("given", "seed"), ("withdrawn", "seed")]
    for consent in consents.values():
        assert consent["history"][0]["event"] == "given"
        assert (consent["history"][-1]["event"] in ("given", "renewed")) == consent["active"], consent
        assert consent["status"] == ("active" if consent["active"] else "withdrawn")
    assert consents[("nts", "health-insurance")]["recipient_names"]["ko"] == "국세청"


def test_overview_of_the_english_demo_citizen_has_no_wallet(client):
    body = client.get("/v1/console/speakers/demo-user-en/overview").get_json()
    assert body["citizen"]["locale"] == "en-US" and body["wallet"] is None
    assert {c["id"]: c["status"] for c in body["certificates"]}["cert-0002-vac"] == "revoked"


def test_unlinked_speaker_has_no_citizen(client):
    response = client.get("/v1/console/speakers/console-guest-0000/overview")
    assert response.status_code == 200 and response.get_json() == {"user_id": "console-guest-0000", "citizen": None}


def test_a_citizen_outside_the_demo_data_is_not_shown(client, new_citizen):
    _, user_id = new_citizen()
    response = client.get(f"/v1/console/speakers/{user_id}/overview")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_a_demo_citizen"
    assert "테스트" not in response.get_data(as_text=True)


def test_the_overview_does_not_exist_outside_demo_mode(tmp_path):
    app = create_app(make_settings(tmp_path, demo=False, load_models=False), start=False)
    client = app.test_client()
    response = client.get("/v1/console/speakers/demo-user-ko/overview")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    # The page still works as a voice console, just without demo identities or My data.
    assert page_config(client.get("/").get_data(as_text=True)) == {"demo": False, "speakers": [], "max_recording_s": 30}


def test_typed_console_turn_follows_the_converse_contract_and_reports_its_locale(client):
    response = client.post("/v1/console/converse", json={"text": "help"}, headers=EN)
    body = response.get_json()
    assert response.status_code == 200
    assert body["intent"] == "help" and body["locale"] == "en-US" and body["speech"].startswith("You can say")
    assert set(body) >= {"session_id", "speech", "ssml", "display", "intent", "end_session", "expects"}
    # The Korean citizen's session switched to English by the turn's locale.
    first = client.post("/v1/console/converse", json={"text": "도움말"}, headers=KO).get_json()
    assert first["locale"] == "ko-KR"
    switched = client.post("/v1/console/converse", json={"text": "help", "locale": "en-US",
                                                          "session_id": first["session_id"]}, headers=KO).get_json()
    assert switched["locale"] == "en-US" and switched["session_id"] == first["session_id"]


def test_typed_console_turn_rejects_bad_input_like_converse(client):
    assert client.post("/v1/console/converse", json={"user_id": "demo-user-ko"}).status_code == 400
    assert client.post("/v1/console/converse", json={"user_id": "u", "text": "x", "locale": "fr-FR"}
                       ).get_json()["error"]["code"] == "unsupported_locale"
    assert client.post("/v1/console/converse", data="text", content_type="text/plain").status_code == 415


def test_overview_lists_wallet_copies_with_their_status(tmp_path):
    """A credential really issued to the demo wallet (the in-process OID4VCI flow of the wallet tests) shows
    in the overview, and a suspension shows too. Own database: the shared one's certificates stay copy-free."""
    from tests.wallet_bridge.conftest import Holder, redeem_offer

    app = create_app(make_settings(tmp_path, load_models=False), start=False)
    bridge = app.extensions["minwon"].wallet
    client = app.test_client()
    assert client.get("/v1/console/speakers/demo-user-ko/overview").get_json()["wallet"]["copies"] == []
    redeem_offer(bridge, Holder())
    copies = client.get("/v1/console/speakers/demo-user-ko/overview").get_json()["wallet"]["copies"]
    assert len(copies) == 1
    copy = copies[0]
    assert (copy["doc_type"], copy["certificate_id"], copy["status"]) == (
        "resident-registration-copy", "cert-0001-rrc", "valid")
    assert copy["names"]["ko"] == "주민등록표 등본" and copy["issued_at"]
    bridge.status_control.suspend(copy["id"])
    copies = client.get("/v1/console/speakers/demo-user-ko/overview").get_json()["wallet"]["copies"]
    assert [c["status"] for c in copies] == ["suspended"]
