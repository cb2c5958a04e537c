"""The console's server side: the page (with its security headers and configuration) and the demo-only
speaker overview that feeds the My data panel. Needs only main."""

from __future__ import annotations

import json
import re

from app import create_app
from tests.conftest import make_settings


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
    assert consents[("hf", "resident-registration")]["active"] is False
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
