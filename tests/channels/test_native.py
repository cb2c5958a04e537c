"""The native converse API contract: replies, every error status, and nothing written for a rejected request."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import func, select

from app import create_app
from skills.sessions import dialog_sessions
from tests.conftest import make_settings

KO = {"Authorization": "Bearer demo-device-token-ko"}
EN = {"Authorization": "Bearer demo-device-token-en"}


def session_count(services) -> int:
    with services.db.read() as conn:
        return conn.execute(select(func.count()).select_from(dialog_sessions)).scalar()


def test_health_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_health_is_503_until_components_load(tmp_path, services):
    # The shared app's FAQ index and router models, as `build-index` leaves them on a node: the components load
    # from them instead of building and training everything again (minutes).
    shutil.copytree(services.settings.data_dir / "index", tmp_path / "index")
    app = create_app(make_settings(tmp_path), start=False)
    state = app.extensions["minwon"]
    state.add_loader("slow", lambda _s: "loaded")
    assert app.test_client().get("/health").status_code == 503
    state.start(background=False)
    response = app.test_client().get("/health")
    assert response.status_code == 200 and "slow" in response.get_json()["components"]


def test_korean_help(client):
    response = client.post("/v1/converse", json={"user_id": "demo-user-ko", "text": "도움말"}, headers=KO)
    body = response.get_json()
    assert response.status_code == 200
    assert body["intent"] == "help" and "말해 보세요" in body["speech"]
    assert body["ssml"].startswith("<speak>") and body["end_session"] is False and body["expects"] is None
    assert body["session_id"]


def test_english_help(client):
    body = client.post("/v1/converse", json={"text": "help", "locale": "en-US"}, headers=EN).get_json()
    assert body["intent"] == "help" and body["speech"].startswith("You can say")


def test_locale_defaults_from_linked_citizen(client):
    body = client.post("/v1/converse", json={"text": "help"}, headers=EN).get_json()
    assert body["speech"].startswith("You can say")
    body = client.post("/v1/converse", json={"text": "도움말"}).get_json()  # anonymous: Korean first
    assert "말해 보세요" in body["speech"]


def test_session_is_kept_and_repeat_says_it_again(conversation):
    talk = conversation("demo-user-ko")
    first = talk.say("도움말")
    again = talk.say("다시 말해줘")
    assert again["session_id"] == first["session_id"]
    assert again["intent"] == "repeat" and again["speech"] == first["speech"]


def test_stop_ends_the_session(conversation):
    reply = conversation("demo-user-en", "en-US").say("stop")
    assert reply["end_session"] is True and "Goodbye" in reply["speech"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "malformed_json"),
        ({"data": "[1, 2]", "content_type": "application/json"}, 400, "malformed_json"),
        ({"json": {"user_id": "demo-user-ko"}}, 400, "missing_text"),
        ({"json": {"user_id": "demo-user-ko", "text": "   "}}, 400, "missing_text"),
        ({"json": {"user_id": "demo-user-ko", "text": 5}}, 400, "missing_text"),
        ({"json": {"user_id": "demo-user-ko", "text": "가" * 1001}}, 400, "text_too_long"),
        ({"json": {"user_id": "demo-user-ko", "text": "help", "locale": "fr-FR"}}, 400, "unsupported_locale"),
        ({"json": {"user_id": "u" * 129, "text": "help"}}, 400, "invalid_user_id"),
        ({"json": {"text": "help", "session_id": "s" * 129}}, 400, "invalid_session_id"),
        ({"json": {"text": "help", "request_id": 7}}, 400, "invalid_request_id"),
        ({"data": "user_id=x&text=help", "content_type": "application/x-www-form-urlencoded"}, 415,
         "unsupported_media_type"),
        ({"data": json.dumps({"user_id": "u", "text": "x" * 70_000}), "content_type": "application/json"}, 413,
         "payload_too_large"),
    ],
)
def test_rejected_requests_get_json_errors_and_write_nothing(client, services, kwargs, status, code):
    before = session_count(services)
    response = client.post("/v1/converse", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["message"]
    assert session_count(services) == before


def test_text_of_exactly_1000_characters_is_accepted(client):
    assert client.post("/v1/converse", json={"text": "가" * 1000}).status_code == 200


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    app = create_app(make_settings(tmp_path, rate_limit_per_minute=3), start=False)
    client = app.test_client()
    auth = {"Authorization": "Bearer " + app.extensions["minwon"].devices.issue("rl")}
    statuses = [client.post("/v1/converse", json={"text": "help"}, headers=auth).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    limited = client.post("/v1/converse", json={"text": "help"}, headers=auth)
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1


def test_unexpected_error_is_500_json_without_traceback(tmp_path):
    app = create_app(make_settings(tmp_path), start=False)

    def explode(_turn):
        raise RuntimeError("secret internals at /srv/minwon/engine.py line 42")

    app.extensions["minwon"].dialog.converse = explode
    response = app.test_client().post("/v1/converse", json={"text": "help"})
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "Traceback" not in body and "secret internals" not in body


def test_retry_with_same_request_id_returns_the_same_reply(conversation):
    talk = conversation("demo-user-ko")
    first = talk.say("도움말", request_id="req-1")
    retry = talk.say("그만", request_id="req-1")
    assert retry == first


def test_unknown_route_is_json_404(client):
    response = client.get("/no/such/thing")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_rate_limit_per_ip_covers_many_users(tmp_path):
    app = create_app(make_settings(tmp_path, ip_rate_limit_per_minute=4), start=False)
    client = app.test_client()
    statuses = [client.post("/v1/converse", json={"text": "help"}).status_code for _ in range(6)]
    assert statuses[:4] == [200] * 4 and 429 in statuses[4:]
