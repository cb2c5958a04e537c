"""POST /nugu/<action> and GET /nugu/health: token check, result codes, and the backend-proxy response schema."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select

from app import create_app
from channels.nugu.request import parse_nugu_request
from channels.nugu.webhook import NuguChannel
from channels.schemas import response_validator
from skills.sessions import dialog_sessions
from storage import StorageUnavailable
from tests.channels.conftest import DEMO_CITIZEN, DEMO_PIN, load_fixture
from tests.conftest import make_settings

TOKEN = "test-nugu-" + secrets.token_hex(8)


def valid(response, code: str = "OK") -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    errors = [e.message for e in response_validator("nugu").iter_errors(body)]
    assert errors == [], errors
    assert body["resultCode"] == code, body
    return body


@pytest.fixture
def nugu_channel(app, monkeypatch) -> NuguChannel:
    channel = NuguChannel(token=TOKEN, converse=app.extensions["minwon_nugu"].converse)
    monkeypatch.setitem(app.extensions, "minwon_nugu", channel)
    return channel


class NuguUser:
    """One NUGU user of a play with account linking (so a stable access token), in one play session."""

    def __init__(self, client) -> None:
        self.client = client
        self.access_token = "nugu-oauth-" + secrets.token_hex(8)
        self.session_id = secrets.token_hex(6)

    def body(self, action: str, **parameters: str) -> dict:
        body = load_fixture("nugu", "backend_proxy_request_foodfighter.json")
        body["action"] = {
            "actionName": action,
            "parameters": {k: {"type": "string", "value": v} for k, v in parameters.items()},
        }
        body["context"]["session"].update(accessToken=self.access_token, id=self.session_id, isNew=False)
        return body

    def post(self, action: str, body: dict, token: str | None = TOKEN):
        headers = {"Authorization": f"token {token}"} if token is not None else {}
        return self.client.post(f"/nugu/{action}", json=body, headers=headers)

    def act(self, action: str, **parameters: str):
        return self.post(action, self.body(action, **parameters))

    def service_user_id(self) -> str:
        return parse_nugu_request(self.body("launch"), "launch").user_id


@pytest.fixture
def nugu_user(client, nugu_channel) -> NuguUser:
    return NuguUser(client)


def session_count(services) -> int:
    with services.db.read() as conn:
        return conn.execute(select(func.count()).select_from(dialog_sessions)).scalar()


def test_health_is_200_when_ready_without_a_token(client):
    response = client.get("/nugu/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_health_is_503_while_starting(tmp_path):
    app = create_app(make_settings(tmp_path), start=False)
    app.extensions["minwon"].add_loader("slow", lambda _s: "loaded")
    assert app.test_client().get("/nugu/health").status_code == 503


@pytest.mark.parametrize(
    "header",
    [None, "", "token", f"Bearer {TOKEN}", "token wrong", f"token {TOKEN}x", f"Token{TOKEN}"],
)
def test_missing_or_wrong_authorization_is_401_and_nothing_runs(nugu_user, services, header):
    before = session_count(services)
    headers = {"Authorization": header} if header is not None else {}
    response = nugu_user.client.post("/nugu/launch", json=nugu_user.body("launch"), headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"
    assert session_count(services) == before


def test_token_scheme_is_case_insensitive(nugu_user):
    response = nugu_user.client.post(
        "/nugu/launch", json=nugu_user.body("launch"), headers={"Authorization": f"TOKEN {TOKEN}"}
    )
    valid(response)


def test_unconfigured_token_refuses_everything(client):
    body = load_fixture("nugu", "backend_proxy_request_foodfighter.json")
    response = client.post("/nugu/FoodFighter", json=body, headers={"Authorization": "token anything"})
    assert response.status_code == 503


def test_real_fixture_gets_a_graceful_answer(nugu_user):
    body = load_fixture("nugu", "backend_proxy_request_foodfighter.json")
    answer = valid(nugu_user.post("FoodFighter", body))
    # An action we do not define: the spoken fallback, not an FAQ search for its parameters ("김치 1000").
    assert "도와드릴 수 없어요" in answer["output"]["ment"] and answer["output"]["end_session"] == "false"
    assert answer["output"]["intent"] == "faq_not_sure"
    assert answer["directives"] == []


def test_launch(nugu_user):
    output = valid(nugu_user.act("launch"))["output"]
    assert "무엇을 도와드릴까요" in output["ment"] and output["expects"] == "none"


def test_faq_question_answers_as_the_native_channel_does(nugu_user, client):
    question = "등본 떼려면 어떻게 해"
    output = valid(nugu_user.act("ask", utterance=question))["output"]
    native = client.post("/v1/converse", json={"user_id": "native-" + nugu_user.session_id, "text": question})
    assert output["ment"] == native.get_json()["speech"]
    assert "잘 듣지 못했어요" not in output["ment"]  # the words arrived (an empty turn gets "didn't catch that")


def test_account_not_linked_is_a_result_code(nugu_user, probe):
    body = valid(nugu_user.act("ask", utterance="채널 시험 기록 알려줘"), code="accountNotLinked")
    assert "연결되지 않았어요" in body["output"]["ment"]


def test_link_then_pin_step_up(nugu_user, probe, services):
    code = services.accounts.issue_link_code(DEMO_CITIZEN)
    assert "연결되었어요" in valid(nugu_user.act("link_account", code=code))["output"]["ment"]
    output = valid(nugu_user.act("ask", utterance="채널 시험 기록 알려줘"))["output"]
    assert "비밀번호" in output["ment"] and output["expects"] == "pin"
    assert "세 건" in valid(nugu_user.act("answer.pin", pin=DEMO_PIN))["output"]["ment"]


def test_multi_turn_confirmation(nugu_user, probe, services):
    services.accounts.link_user(nugu_user.service_user_id(), DEMO_CITIZEN)
    valid(nugu_user.act("ask", utterance="채널 시험 설정 바꿔줘"))
    output = valid(nugu_user.act("answer.pin", pin=DEMO_PIN))["output"]
    assert "바꿀까요" in output["ment"] and output["expects"] == "confirmation"
    assert "바꾸지 않았어요" in valid(nugu_user.act("answer.no"))["output"]["ment"]
    valid(nugu_user.act("ask", utterance="채널 시험 설정 바꿔줘"))
    before = len(probe.changes)
    assert "바꿨어요" in valid(nugu_user.act("answer.yes"))["output"]["ment"]
    assert probe.changes[before:] == [DEMO_CITIZEN]


def test_stop_ends_the_session(nugu_user):
    output = valid(nugu_user.act("stop"))["output"]
    assert output["end_session"] == "true" and "안녕히" in output["ment"]


def test_storage_failure_is_http_200_with_a_result_code(nugu_user, nugu_channel, services, monkeypatch):
    def busy(_turn):
        raise StorageUnavailable("database is locked")

    monkeypatch.setattr(services.dialog, "converse", busy)
    body = valid(nugu_user.act("launch"), code="serviceBusy")
    assert "잠시 후" in body["output"]["ment"]


def test_unexpected_failure_is_http_200_with_backend_error(nugu_user, services, monkeypatch):
    def broken(_turn):
        raise RuntimeError("boom")

    monkeypatch.setattr(services.dialog, "converse", broken)
    body = valid(nugu_user.act("launch"), code="backendError")
    assert "boom" not in str(body)


def test_path_and_body_actions_must_agree(nugu_user):
    response = nugu_user.post("launch", nugu_user.body("stop"))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "action_mismatch"
