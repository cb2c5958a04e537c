"""Logs, in both directions: secrets never reach them, and what is not secret stays readable.

Every test captures everything the process logs with a handler on the root logger (at DEBUG), and scans
three things: the raw records (message, every extra field, the exception with its message — before any
redaction, so a call site that passes a secret fails even though the formatter would have hidden it),
and what the JSON and the text formatter write.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import socket
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.serving import make_server

from app import dev_server
from domain.certificates import Certificate
from domain.clock import korean_today
from observability import JsonFormatter, TextFormatter, _apply_recognisers, configure_logging, log_ref, redact
from settings import Settings
from tests.channels.test_kakao_webhook import TOKEN as KAKAO_TOKEN
from tests.channels.test_kakao_webhook import valid
from tests.loopback import LoopbackServer
from tests.wallet_bridge.conftest import Holder

GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class CapturedLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.raw: list[str] = []
        self.json: list[str] = []
        self.text: list[str] = []
        self._json, self._text = JsonFormatter(), TextFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        parts = [record.getMessage()]
        parts += [repr(value) for key, value in vars(record).items() if key not in _STANDARD]
        if record.exc_info:
            parts += traceback.format_exception(*record.exc_info)
        self.raw.append(" ".join(parts))
        self.json.append(self._json.format(record))
        self.text.append(self._text.format(record))

    def outputs(self) -> dict[str, str]:
        return {"raw": "\n".join(self.raw), "json": "\n".join(self.json), "text": "\n".join(self.text)}

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def wait_for(self, message: str, timeout: float = 10.0) -> logging.LogRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in list(self.records):
                if record.getMessage() == message:
                    return record
            time.sleep(0.05)
        raise AssertionError(f"no log line {message!r} in {self.messages()}")


@contextmanager
def captured_logs() -> Iterator[CapturedLogs]:
    handler = CapturedLogs()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def assert_not_logged(logs: CapturedLogs, *secrets_: str) -> None:
    for where, output in logs.outputs().items():
        for secret in secrets_:
            assert secret
            # A numeric secret counts as a whole number, so that a timestamp or a hex request id that
            # happens to contain its digits is not taken for it.
            pattern = rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])" if secret.isdigit() else re.escape(secret)
            assert not re.search(pattern, output), f"{secret!r} in the {where} log output"


# -- secrets never appear -----------------------------------------------------------------------------------


def test_link_code_pin_name_session_id_and_user_key_are_not_logged(services, conversation, new_citizen):
    pin = f"{secrets.randbelow(9000) + 1000}"
    with captured_logs() as logs:
        citizen_id, _ = new_citizen(pin=pin, name="김비밀")
        code = services.accounts.issue_link_code(citizen_id)
        speaker_key = "speaker-logs-" + secrets.token_hex(6)
        talk = conversation(speaker_key)
        talk.say(f"연결 코드 {code}")
        asked = talk.say("내 정보 누가 볼 수 있어")
        assert asked["expects"] == "pin"
        answered = talk.say(pin)
        assert answered["expects"] != "pin"
        talk.say("my token is demo-wallet-token-0001 and my pin is " + pin)
    turns = [r for r in logs.records if r.getMessage() == "turn"]
    assert len(turns) == 4  # the turns were logged …
    # … each with a reference that ties the session's lines together, not the session id
    assert {r.session_ref for r in turns} == {log_ref(talk.session_id)}
    assert_not_logged(logs, pin, code, "김비밀", "demo-wallet-token-0001", talk.session_id, speaker_key)


def test_wallet_send_tx_code_and_oid4vci_secrets_are_not_logged(client, services, new_citizen, conversation):
    citizen_id, user_id = new_citizen(pin="6482")
    services.certificates.add(Certificate(
        id=f"{citizen_id}-rrc", citizen_id=citizen_id, doc_type="resident-registration-copy", state="issued",
        applied_on=None, issued_on=korean_today() - timedelta(days=3), valid_until=korean_today() + timedelta(days=87)))
    wallet_id, wallet_token = "wallet-t-" + secrets.token_hex(4), "wt-" + secrets.token_urlsafe(16)
    services.wallet.wallets.register(wallet_id, citizen_id, wallet_token)
    with captured_logs() as logs:
        talk = conversation(user_id)
        talk.say("등본 지갑으로 보내줘")
        talk.say("네")
        reply = talk.say("육 사 팔 이")
        tx_code = re.findall(r'interpret-as="digits">(\d+)<', reply["ssml"])[0]
        offers = client.get(f"/v1/wallets/{wallet_id}/offers", headers={"Authorization": f"Bearer {wallet_token}"})
        code = offers.get_json()["offers"][0]["credential_offer"]["grants"][GRANT]["pre-authorized_code"]
        client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": code, "tx_code": "000000"},
                    environ_base={"REMOTE_ADDR": "192.0.2.77"})
        access = client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": code,
                                                     "tx_code": tx_code},
                             environ_base={"REMOTE_ADDR": "192.0.2.77"}).get_json()["access_token"]
        nonce = client.post("/oid4vci/nonce").get_json()["c_nonce"]
        issued = client.post("/oid4vci/credential", headers={"Authorization": f"Bearer {access}"}, json={
            "credential_configuration_id": "ResidentRegistrationCopyCredential",
            "proofs": {"jwt": [Holder().proof(services.wallet.config.issuer, nonce, services.wallet.clock())]}})
        assert issued.status_code == 200
    routes = [getattr(r, "route", None) for r in logs.records]
    assert "/oid4vci/credential" in routes and "/v1/wallets/<wallet_id>/offers" in routes  # logged by route …
    credential = issued.get_json()["credentials"][0]["credential"]
    # … without any of their secrets
    assert_not_logged(logs, tx_code, code, access, nonce, wallet_token, "6482", credential, talk.session_id, user_id)


def test_bearer_tokens_are_not_logged(client):
    wrong = ["wrong-" + secrets.token_urlsafe(12) for _ in range(3)]
    with captured_logs() as logs:
        client.post("/v1/mydata/share", json={"citizen_id": "citizen-0001", "data_item": "income"},
                    headers={"Authorization": "Bearer demo-agency-key-nhis"})
        client.get("/v1/citizens/citizen-0001/consents", headers={"Authorization": "Bearer demo-citizen-token-0001"})
        assert client.get("/v1/citizens/citizen-0001/consents",
                          headers={"Authorization": f"Bearer {wrong[0]}"}).status_code == 401
        client.post("/v1/mydata/share", json={"citizen_id": "citizen-0001", "data_item": "income"},
                    headers={"Authorization": f"Bearer {wrong[1]}"})
        client.get(f"/v1/wallets/no-such-wallet/offers?access_token={wrong[2]}",
                   headers={"Authorization": f"Bearer {wrong[2]}"})
    assert "mydata share" in logs.messages()
    assert_not_logged(logs, "demo-agency-key-nhis", "demo-citizen-token-0001", *wrong)


def test_kakao_callback_urls_and_user_keys_are_not_logged(kakao_user, callback_server, slow_turns):
    base, recorder = callback_server
    with socket_closed_port() as dead_port:
        dead_url = f"http://127.0.0.1:{dead_port}/v1/callback/{secrets.token_urlsafe(16)}"
    live_url = f"{base}/v1/callback/{secrets.token_urlsafe(16)}"
    with captured_logs() as logs:
        assert valid(kakao_user.say("도움말", callbackUrl=dead_url))["useCallback"] is True
        failed = logs.wait_for("kakao callback failed")
        assert failed.error == "ConnectionError" and failed.exc_info is None
        assert valid(kakao_user.say("도움말", callbackUrl=live_url))["useCallback"] is True
        logs.wait_for("kakao callback delivered")
    assert recorder.received  # the live callback was really made
    for url in (dead_url, live_url):
        assert_not_logged(logs, url, url.rsplit("/", 1)[1])
    assert_not_logged(logs, kakao_user.user_id, KAKAO_TOKEN)


@contextmanager
def socket_closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port  # closed again: connecting to it is refused


def test_dev_server_logs_the_url_to_open_and_no_request_lines_with_query_strings(app, services):
    user_key = "voice-user-" + secrets.token_hex(6)
    speech = services.components["tts"].synthesize("도움말", "ko-KR")
    with captured_logs() as logs, LoopbackServer(dev_server(app, "127.0.0.1", 0)) as server:
        base = server.url
        query = f"user_id={user_key}&device_id=dev-{user_key}"
        first = requests.post(f"{base}/v1/voice?{query}", data=speech, headers={"Content-Type": "audio/wav"},
                              timeout=60)
        assert first.status_code == 200, first.text
        session_id = first.json()["response"]["session_id"]
        query += f"&session_id={session_id}"
        again = requests.post(f"{base}/v1/voice?{query}", data=speech, headers={"Content-Type": "audio/wav"},
                              timeout=60)
        assert again.status_code == 200 and again.json()["response"]["session_id"] == session_id
        requests.get(f"{base}/health?pin=7319", timeout=10)
        # A request line werkzeug refuses: its error message would quote the line, query string and all.
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(f"GET /v1/voice?{query} HTTP/9\r\n\r\n".encode())
            raw.recv(1024)
    opened = [m for m in logs.messages() if m.startswith("Minwon Voice: open ")]
    assert opened == [f"Minwon Voice: open http://127.0.0.1:{server.port}/ "
                      "(development server; `make serve-prod` for production)"]
    assert f"http://127.0.0.1:{server.port}/" in logs.outputs()["text"]  # the port is kept
    routes = [getattr(r, "route", None) for r in logs.records]
    assert "/v1/voice" in routes and "/health" in routes
    assert not [m for m in logs.messages() if "HTTP/1.1" in m or "HTTP/9" in m]
    assert "request refused by the HTTP server" in logs.messages()
    assert_not_logged(logs, user_key, session_id, "7319")


def test_werkzeug_default_handler_would_have_logged_the_query_string(app):
    """The control for the test above: the capture does see werkzeug's own access log line."""
    secret = "q-" + secrets.token_hex(8)
    with captured_logs() as logs, LoopbackServer(make_server("127.0.0.1", 0, app, threaded=True)) as server:
        requests.get(f"{server.url}/health?user_id={secret}", timeout=10)
    assert secret in logs.outputs()["raw"]
    assert secret not in logs.outputs()["json"] and secret not in logs.outputs()["text"]  # query values redacted


def test_secret_fields_and_formats_are_redacted_by_the_formatters():
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaXRpemVuIn0.c2lnbmF0dXJl"
    log = logging.getLogger("minwon.test")
    with captured_logs() as logs:
        log.info("field values", extra={"pin": "7319", "tx_code": 482913, "access_token": "at-secret-1",
                                        "citizen_name": "김비밀", "user_id": "raw-user-key-1",
                                        "details": {"token": "nested-secret-1", "items": 3}})
        log.warning("a library said: Authorization: Bearer bearer-secret-1, token=" + jwt)
        log.warning("form pre-authorized_code=pac-secret-1&tx_code=513579 and pin: 2468, PIN 97531")
        log.warning("the resident number 900101-1234567 was in a message")
        try:
            raise ValueError("rejected pin=8642 for " + jwt)
        except ValueError:
            log.exception("with a traceback")
    formatted = logs.outputs()["json"] + logs.outputs()["text"]
    for secret in ("7319", "482913", "at-secret-1", "김비밀", "raw-user-key-1", "nested-secret-1", "bearer-secret-1",
                   jwt, "pac-secret-1", "513579", "2468", "97531", "900101-1234567", "8642"):
        pattern = rf"(?<!\d){secret}(?!\d)" if secret.isdigit() else re.escape(secret)
        assert not re.search(pattern, formatted), secret
    entry = json.loads(logs.json[0])
    assert entry["details"] == {"token": "[redacted]", "items": 3}  # the structure stays readable


# One secret for each thing the quick check in front of the recognisers looks for, and ordinary text around it:
# the check must never let through a string one of the recognisers would have changed.
SECRETS_IN_TEXT = ["pin 2468", "PIN 97531", "tx_code 513579", "link code 12345678", "Bearer abc.def",
                   "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "900101-1234567", "/cb?code=1", "token=x", "password: hunter2"]
ORDINARY_TEXT = st.lists(st.sampled_from(["a", " ", "-", ".", "?", "&", "2468", "/v1/converse", "정부24", "spinning",
                                          "65354ddc799b3288"]), max_size=4).map("".join)


@pytest.mark.parametrize("secret", SECRETS_IN_TEXT)
@given(before=ORDINARY_TEXT, after=ORDINARY_TEXT)
def test_the_quick_check_before_redaction_never_skips_a_secret(secret, before, after):
    assert _apply_recognisers(secret) != secret  # each one is something the recognisers change
    text = before + secret + after
    assert redact(text) == _apply_recognisers(text)


# -- what is not secret stays -------------------------------------------------------------------------------


def test_ports_years_counts_durations_and_ids_are_kept():
    log = logging.getLogger("minwon.test")
    with captured_logs() as logs:
        log.info("listening on http://127.0.0.1:8080/", extra={"port": 8080})
        log.info("built FAQ index: 1234 entries, 5678 calibration queries in 12.5 s")
        log.info("certificates valid until 2026-12-31", extra={"year": 2026, "outbox_id": 40213, "ms": 1043.7,
                                                               "citizen_id": "citizen-0001"})
    for output in (logs.outputs()["json"], logs.outputs()["text"]):
        for kept in ("http://127.0.0.1:8080/", "port", "8080", "1234 entries", "5678 calibration queries",
                     "12.5 s", "2026-12-31", "2026", "40213", "1043.7", "citizen-0001"):
            assert kept in output, (kept, output)
        assert "[redacted]" not in output


def test_the_app_request_line_keeps_route_status_and_duration(client):
    with captured_logs() as logs:
        client.get("/health")
    entry = next(json.loads(line) for line in logs.json if json.loads(line)["msg"] == "request")
    assert entry["route"] == "/health" and entry["method"] == "GET" and entry["status"] in (200, 503)
    assert isinstance(entry["ms"], float)


# -- the text format ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("text", "text"), (" TEXT ", "text"), ("json", "json"),
                                                 ("", "json"), ("xml", "json")])
def test_log_format_setting(value, expected):
    assert Settings.from_env({"MINWON_LOG_FORMAT": value}).log_format == expected


def test_text_format_is_one_readable_line():
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("INFO", stream=stream, fmt="text")
        logging.getLogger("minwon").info("Minwon Voice: open http://127.0.0.1:8080/")
        logging.getLogger("minwon.test").warning("request", extra={"route": "/v1/voice", "status": 200, "ms": 12.5,
                                                                   "pin": "7319", "note": "two words"})
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO +minwon: Minwon Voice: open http://127\.0\.0\.1:8080/", first)
    assert re.fullmatch(r'\d\d:\d\d:\d\d WARNING minwon\.test: request route=/v1/voice status=200 ms=12\.5 '
                        r'pin=\[redacted\] note="two words"', second)
