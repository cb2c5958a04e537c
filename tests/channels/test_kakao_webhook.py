"""POST /kakao end to end: token check, the dialog through Open Builder payloads, SkillResponse schema, and
the callback path for slow turns against a real HTTP callback server on loopback."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from sqlalchemy import func, select

from channels.kakao.callback import CallbackPolicy, CallbackWorker
from channels.kakao.webhook import KakaoChannel
from channels.schemas import response_validator
from outbound import OutboundPolicy
from skills.sessions import dialog_sessions
from tests.channels.conftest import DEMO_CITIZEN, DEMO_PIN, load_fixture
from tests.loopback import LoopbackServer

TOKEN = "test-kakao-" + secrets.token_hex(8)


def valid(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    errors = [e.message for e in response_validator("kakao").iter_errors(body)]
    assert errors == [], errors
    return body


def texts(body: dict) -> str:
    return " ".join(o["simpleText"]["text"] for o in body["template"]["outputs"])


def labels(body: dict) -> list[str]:
    return [q["label"] for q in body["template"].get("quickReplies", [])]


@pytest.fixture
def kakao_channel(app, monkeypatch) -> Iterator[KakaoChannel]:
    current: KakaoChannel = app.extensions["minwon_kakao"]
    # The callback receiver below is plain http on 127.0.0.1, which the outbound policy refuses in
    # production (https on a public address only). These tests are about the callback flow, so the channel
    # runs with the tests-only switch MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP on (loopback over http let through,
    # everything else still refused); tests/security/test_outbound.py tests the policy itself.
    local_receiver = OutboundPolicy(allow_loopback_http=True)
    worker = CallbackWorker(workers=2, outbound=local_receiver)
    channel = KakaoChannel(
        token=TOKEN,
        token_header="X-Skill-Token",
        budget_s=3.5,
        callbacks=CallbackPolicy(["127.0.0.1"], local_receiver),
        worker=worker,
        converse=current.converse,
    )
    monkeypatch.setitem(app.extensions, "minwon_kakao", channel)
    yield channel
    worker.shutdown()


class KakaoUser:
    def __init__(self, client) -> None:
        self.client = client
        self.user_id = "kakao-test-" + secrets.token_hex(6)

    def payload(self, utterance: str, **user_request) -> dict:
        payload = load_fixture("kakao", "skill_request_keyword_search.json")
        payload["userRequest"].update(utterance=utterance, **user_request)
        payload["userRequest"]["user"]["id"] = self.user_id
        payload["userRequest"]["block"]["name"] = "민원 폴백 블록"
        return payload

    def post(self, payload: dict, token: str | None = TOKEN):
        headers = {"X-Skill-Token": token} if token is not None else {}
        return self.client.post("/kakao", json=payload, headers=headers)

    def say(self, utterance: str, **user_request):
        return self.post(self.payload(utterance, **user_request))


@pytest.fixture
def kakao_user(client, kakao_channel) -> KakaoUser:
    return KakaoUser(client)


def session_count(services) -> int:
    with services.db.read() as conn:
        return conn.execute(select(func.count()).select_from(dialog_sessions)).scalar()


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x"])
def test_missing_or_wrong_token_is_401_and_nothing_runs(kakao_user, services, token):
    before = session_count(services)
    response = kakao_user.post(kakao_user.payload("도움말"), token=token)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"
    assert session_count(services) == before


def test_unconfigured_token_refuses_everything(client):
    # The shared app has no MINWON_KAKAO_TOKEN: the endpoint is closed, not open.
    response = client.post(
        "/kakao", json=load_fixture("kakao", "skill_request_keyword_search.json"), headers={"X-Skill-Token": ""}
    )
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "channel_not_configured"


def test_real_fixture_is_answered_in_the_skill_response_format(kakao_user):
    body = valid(kakao_user.post(load_fixture("kakao", "skill_request_keyword_search.json")))
    assert texts(body)  # "2021 검색" is not an intent of ours: a spoken fallback, not an error


def test_welcome_block_is_a_launch(kakao_user):
    payload = kakao_user.payload("안녕")
    payload["userRequest"]["block"]["name"] = "웰컴 블록"
    assert "무엇을 도와드릴까요" in texts(valid(kakao_user.post(payload)))


def test_faq_question_answers_as_the_native_channel_does(kakao_user, client):
    question = "등본 떼려면 어떻게 해?"
    body = valid(kakao_user.say(question + "\n"))
    native = client.post("/v1/converse", json={"user_id": "native-" + kakao_user.user_id, "text": question}).get_json()
    assert texts(body) == native["speech"]
    assert "잘 듣지 못했어요" not in texts(body)  # the words arrived (an empty turn gets "didn't catch that")


def test_account_not_linked(kakao_user, probe):
    body = valid(kakao_user.say("채널 시험 기록 알려줘"))
    assert "연결되지 않았어요" in texts(body)


def link(kakao_user, services) -> None:
    code = services.accounts.issue_link_code(DEMO_CITIZEN)
    assert "연결되었어요" in texts(valid(kakao_user.say(f"연결 코드 {code}")))


def test_pin_step_up(kakao_user, probe, services):
    link(kakao_user, services)
    body = valid(kakao_user.say("채널 시험 기록 알려줘"))
    assert "비밀번호" in texts(body) and labels(body) == []  # no PIN buttons in a chat
    assert "세 건" in texts(valid(kakao_user.say(DEMO_PIN)))


def test_confirmation_offers_yes_no_quick_replies(kakao_user, probe, services):
    link(kakao_user, services)
    valid(kakao_user.say("채널 시험 설정 바꿔줘"))
    body = valid(kakao_user.say(DEMO_PIN))
    assert "바꿀까요" in texts(body)
    assert body["template"]["quickReplies"] == [
        {"label": "네", "action": "message", "messageText": "네"},
        {"label": "아니요", "action": "message", "messageText": "아니요"},
    ]
    before = len(probe.changes)
    assert "바꿨어요" in texts(valid(kakao_user.say("네")))
    assert probe.changes[before:] == [DEMO_CITIZEN]


def test_stop_ends_the_dialog_session(kakao_user, probe, services):
    link(kakao_user, services)
    valid(kakao_user.say("채널 시험 기록 알려줘"))
    assert "세 건" in texts(valid(kakao_user.say(DEMO_PIN)))
    assert "안녕히 계세요" in texts(valid(kakao_user.say("그만")))
    # A new conversation: the PIN given before "그만" no longer counts.
    assert "비밀번호" in texts(valid(kakao_user.say("채널 시험 기록 알려줘")))


def test_english_chat(kakao_user):
    body = valid(kakao_user.say("help", lang="en"))
    assert texts(body).startswith("You can say")


# -- the callback path ------------------------------------------------------------------------------------


class CallbackRecorder(BaseHTTPRequestHandler):
    received: list
    arrived: threading.Event

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        type(self).received.append({"path": self.path, "body": body, "type": self.headers.get("Content-Type")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"taskId": "t", "status": "SUCCESS"}')
        type(self).arrived.set()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def callback_server():
    handler = type("Recorder", (CallbackRecorder,), {"received": [], "arrived": threading.Event()})
    with LoopbackServer(handler) as server:
        yield server.url, handler


@pytest.fixture
def slow_turns(kakao_channel, monkeypatch):
    """Every turn takes 1 s longer than it does (as a cold model would), and the budget is 0.3 s."""
    real = kakao_channel.converse

    def slow(turn):
        time.sleep(1.0)
        return real(turn)

    monkeypatch.setattr(kakao_channel, "converse", slow)
    monkeypatch.setattr(kakao_channel, "budget_s", 0.3)


def test_slow_turn_answers_use_callback_then_posts_the_reply_once(kakao_user, callback_server, slow_turns):
    base, recorder = callback_server
    started = time.monotonic()
    body = valid(kakao_user.say("도움말", callbackUrl=f"{base}/v1/callback/abc123"))
    answered_in = time.monotonic() - started
    assert body["useCallback"] is True and body["data"]["text"] and "template" not in body
    assert answered_in < 0.9  # at once, not after the 1 s turn
    assert recorder.arrived.wait(10)
    time.sleep(0.5)  # room for a wrong second delivery
    assert len(recorder.received) == 1
    delivered = recorder.received[0]
    assert delivered["path"] == "/v1/callback/abc123" and delivered["type"].startswith("application/json")
    assert response_validator("kakao").is_valid(delivered["body"])
    assert "말해 보세요" in texts(delivered["body"])


def test_slow_turn_without_callback_url_is_answered_late_but_in_full(kakao_user, slow_turns):
    body = valid(kakao_user.say("도움말"))
    assert "말해 보세요" in texts(body)


def test_callback_to_a_host_that_is_not_allowed_is_never_used(kakao_user, callback_server, slow_turns):
    base, recorder = callback_server
    foreign = base.replace("127.0.0.1", "localhost")  # a loopback name, but not on the allowed list
    body = valid(kakao_user.say("도움말", callbackUrl=f"{foreign}/v1/callback/x"))
    assert "말해 보세요" in texts(body)  # answered synchronously instead
    assert not recorder.arrived.wait(1.0)


def test_fast_turn_with_callback_url_answers_directly(kakao_user, callback_server):
    base, recorder = callback_server
    body = valid(kakao_user.say("도움말", callbackUrl=f"{base}/v1/callback/fast"))
    assert "말해 보세요" in texts(body)
    assert not recorder.arrived.wait(0.5)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://bot-api.kakao.com/v1/callback/x", True),
        ("https://kakao.com/cb", True),
        ("http://bot-api.kakao.com/v1/callback/x", False),  # not https
        ("https://kakao.com.evil.example/cb", False),
        ("https://evilkakao.com/cb", False),
        ("https://user@bot-api.kakao.com/cb", False),
        ("http://127.0.0.1:8080/cb", False),  # loopback, but not on the list
        ("https://bot-api.kakao.com:notaport/cb", False),
    ],
)
def test_callback_policy(url, allowed):
    assert CallbackPolicy(["kakao.com"]).allows(url) is allowed


def test_failing_callback_url_loses_no_turn_and_the_worker_goes_on(kakao_user, callback_server, slow_turns):
    """Fault: the callback target refuses the connection. The turn was still taken (its reply can be
    repeated), nothing is sent twice, and the next slow turn's callback is delivered."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # closed again before the callback is tried: connection refused
    body = valid(kakao_user.say("도움말", callbackUrl=f"http://127.0.0.1:{dead_port}/v1/callback/dead"))
    assert body["useCallback"] is True
    time.sleep(1.5)  # the turn finishes and its one callback attempt fails
    repeated = valid(kakao_user.say("다시 말해줘"))
    assert "말해 보세요" in texts(repeated)
    base, recorder = callback_server
    valid(kakao_user.say("도움말", callbackUrl=f"{base}/v1/callback/after"))
    assert recorder.arrived.wait(10)
    assert [r["path"] for r in recorder.received] == ["/v1/callback/after"]
