"""Every caller is who it says it is: attacks on the native API's identity, on sessions, on the PIN and on link
codes, each of which must fail. HTTP attacks go to the shared live server over real HTTP."""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from domain.citizens import LINK_FAILURES_PER_USER, LOCKED_UNTIL_RESET, citizens, link_codes
from domain.clock import utc_now
from skills.sessions import dialog_sessions, turn_replies
from tests.conftest import DEMO_DEVICE_TOKENS, ROOT, make_settings

KO = {"Authorization": "Bearer " + DEMO_DEVICE_TOKENS["demo-user-ko"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def converse(url: str, body: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{url}/v1/converse", json=body, headers=headers or {}, timeout=30)


def table_rows(services, table) -> int:
    with services.db.read() as conn:
        return len(conn.execute(select(table)).all())


@pytest.fixture()
def victim(services, new_citizen):
    """A linked citizen whose speaker has a device token and a session in which the PIN was given."""
    citizen_id, user_id = new_citizen(pin="4321")
    token = services.devices.issue(user_id)
    return citizen_id, user_id, token


def pin_given_session(url: str, token: str, pin: str = "4321") -> str:
    first = converse(url, {"text": "내 증명서 상태 알려줘"}, bearer(token)).json()
    assert first["expects"] == "pin"
    assert converse(url, {"text": pin, "session_id": first["session_id"]}, bearer(token)).json()["expects"] != "pin"
    return first["session_id"]


# -- 1. the native API believes only device tokens ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/converse", "/v1/console/converse"])
def test_naming_a_linked_user_without_its_token_is_401_and_writes_nothing(live_server, services, victim, path):
    _, user_id, _ = victim
    sessions, replies = table_rows(services, dialog_sessions), table_rows(services, turn_replies)
    response = requests.post(f"{live_server}{path}", json={"user_id": user_id, "text": "1234", "request_id": "r-x"},
                             timeout=30)
    assert response.status_code == 401 and response.json()["error"]["code"] == "device_token_required"
    assert (table_rows(services, dialog_sessions), table_rows(services, turn_replies)) == (sessions, replies)
    with services.db.read() as conn:
        assert conn.execute(select(citizens.c.pin_failures).where(citizens.c.id == victim[0])).scalar() == 0


def test_a_voice_turn_naming_a_linked_user_without_its_token_is_401(live_server, victim):
    response = requests.post(f"{live_server}/v1/voice", params={"user_id": victim[1]}, data=b"RIFF",
                             headers={"Content-Type": "audio/wav"}, timeout=30)
    assert response.status_code == 401


def test_a_forged_or_revoked_token_is_401(live_server, services, victim):
    _, user_id, token = victim
    assert converse(live_server, {"text": "도움말"}, bearer("dt-" + secrets.token_urlsafe(32))).status_code == 401
    assert converse(live_server, {"text": "도움말"}, bearer(token)).status_code == 200
    assert services.devices.revoke_all(user_id) == 1
    assert converse(live_server, {"text": "도움말"}, bearer(token)).status_code == 401


def test_a_token_cannot_speak_for_another_user(live_server, services, victim):
    _, user_id, _ = victim
    own = services.devices.issue("dev-attacker-" + secrets.token_hex(3))
    response = converse(live_server, {"user_id": user_id, "text": "내 증명서 상태 알려줘"}, bearer(own))
    assert response.status_code == 403 and response.json()["error"]["code"] == "user_mismatch"


@pytest.mark.parametrize("platform_user", ["kakao:someone", "alexa:amzn1.ask.account.X", "nugu:h:abc"])
def test_platform_user_ids_are_never_accepted_on_native_routes(live_server, platform_user):
    response = converse(live_server, {"user_id": platform_user, "text": "내 증명서 상태 알려줘"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "platform_user"
    response = requests.post(f"{live_server}/v1/voice", params={"user_id": platform_user}, data=b"x",
                             headers={"Content-Type": "audio/wav"}, timeout=30)
    assert response.status_code == 403


def test_a_strangers_turn_never_continues_a_session_where_the_pin_was_given(live_server, services):
    # The Korean demo citizen has five certificates: their count is what a stranger must not hear.
    token = DEMO_DEVICE_TOKENS["demo-user-ko"]
    session_id = pin_given_session(live_server, token, "1357")
    # Anonymous, and with a device of its own: neither continues the victim's session.
    for headers in ({}, bearer(services.devices.issue("dev-stranger-" + secrets.token_hex(3)))):
        reply = converse(live_server, {"text": "내 증명서 상태 알려줘", "session_id": session_id}, headers).json()
        assert reply["session_id"] != session_id
        assert reply["expects"] != "pin" or "증명서" not in reply["speech"]
        assert "다섯 건" not in reply["speech"]  # no certificate count was read out
    # The victim's own session is intact: no PIN asked again.
    reply = converse(live_server, {"text": "내 증명서 상태 알려줘", "session_id": session_id}, bearer(token)).json()
    assert reply["session_id"] == session_id and reply["expects"] != "pin"


def test_a_stored_reply_is_never_handed_to_another_caller(live_server, services):
    token = DEMO_DEVICE_TOKENS["demo-user-ko"]
    session_id = pin_given_session(live_server, token, "1357")
    request_id = "victim-req-" + secrets.token_hex(4)
    secret_reply = converse(live_server, {"text": "내 증명서 상태 알려줘", "session_id": session_id,
                                          "request_id": request_id}, bearer(token)).json()
    assert "다섯 건" in secret_reply["speech"]
    for headers in ({}, bearer(services.devices.issue("dev-replayer-" + secrets.token_hex(3)))):
        replay = converse(live_server, {"text": "도움말", "session_id": session_id, "request_id": request_id},
                          headers).json()
        assert replay["speech"] != secret_reply["speech"] and replay["intent"] == "help"


def test_anonymous_callers_get_public_answers_only(live_server):
    reply = converse(live_server, {"text": "내 증명서 상태 알려줘"}).json()
    assert reply["intent"] == "certificate_status" and reply["expects"] is None
    assert "연결" in reply["speech"]  # linking instructions, nothing personal
    assert converse(live_server, {"text": "연결 코드 12345678"}).json()["speech"].startswith("이 기기는 아직 등록되지")


def test_a_registered_device_gets_a_working_token_and_registration_is_rate_limited(tmp_path):
    from app import create_app

    app = create_app(make_settings(tmp_path, load_models=False), start=False)
    client = app.test_client()
    first = client.post("/v1/devices")
    assert first.status_code == 201
    body = first.get_json()
    assert body["user_id"].startswith("dev-") and body["device_token"].startswith("dt-")
    reply = client.post("/v1/converse", json={"text": "도움말"}, headers=bearer(body["device_token"]))
    assert reply.status_code == 200
    statuses = [client.post("/v1/devices").status_code for _ in range(12)]
    assert 429 in statuses
    app.extensions["minwon"].stop()


def test_kakao_and_nugu_sessions_are_random_and_per_principal(services):
    from domain.devices import DEVICE_USER_PREFIX  # noqa: F401 - the native ids never look like platform ids
    from skills.engine import Turn

    engine = services.dialog
    key = "kakao-h-" + "0" * 48  # the same platform conversation key for two different Kakao users
    first = engine.converse(Turn(user_id="kakao:user-a", text="도움말", platform_session=key, channel="kakao"))
    again = engine.converse(Turn(user_id="kakao:user-a", text="도움말", platform_session=key, channel="kakao"))
    other = engine.converse(Turn(user_id="kakao:user-b", text="도움말", platform_session=key, channel="kakao"))
    assert first.session_id == again.session_id != other.session_id
    assert "user-a" not in first.session_id and first.session_id.startswith("s-") and len(first.session_id) > 20


# -- 2. a PIN belongs to its citizen ------------------------------------------------------------------------


def test_relinking_ends_the_users_sessions_and_the_pin_is_asked_again(live_server, services, victim, new_citizen):
    _, user_id, token = victim
    session_id = pin_given_session(live_server, token)
    other_citizen, _ = new_citizen(pin="9999")
    services.accounts.link_user(user_id, other_citizen)
    reply = converse(live_server, {"text": "내 증명서 상태 알려줘", "session_id": session_id}, bearer(token)).json()
    assert reply["session_id"] != session_id and reply["expects"] == "pin"


def test_twelve_parallel_wrong_pins_all_count(stores, stores_citizen):
    citizen_id, _ = stores_citizen(pin="4321")
    results, barrier = [], threading.Barrier(12)

    def guess() -> None:
        barrier.wait()
        results.append(stores.accounts.verify_pin(citizen_id, "0000"))

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counted = sorted(r.remaining for r in results if not r.locked)
    assert counted == [1, 2, 3, 4]  # four wrong PINs counted one by one, then the fifth locked
    assert sum(r.locked for r in results) == 8 and not any(r.ok for r in results)
    assert stores.accounts.verify_pin(citizen_id, "4321").locked  # even the right PIN waits out the lock


def test_lockouts_escalate_and_only_unlock_ends_the_last_one(stores, stores_citizen, tmp_path):
    citizen_id, _ = stores_citizen(pin="4321")
    lengths = []
    for run in range(3):
        results = [stores.accounts.verify_pin(citizen_id, "0000") for _ in range(5)]
        assert results[-1].locked and results[-1].locked_until is not None
        lengths.append(results[-1].locked_until)
        if run < 2:
            with stores.db.transaction() as conn:  # the lock runs out, as if its time had passed
                conn.execute(update(citizens).where(citizens.c.id == citizen_id).values(
                    locked_until=utc_now() - timedelta(seconds=1)))
    now = utc_now()
    assert timedelta(minutes=14) < lengths[0] - now < timedelta(minutes=16)
    assert timedelta(minutes=59) < lengths[1] - now < timedelta(minutes=61)
    assert lengths[2] == LOCKED_UNTIL_RESET
    assert stores.accounts.verify_pin(citizen_id, "4321").locked
    assert stores.accounts.unlock(citizen_id)
    assert stores.accounts.verify_pin(citizen_id, "4321").ok


def test_unlock_command_lifts_a_lock(tmp_path, database_url):
    env = {**os.environ, "MINWON_DATA_DIR": str(tmp_path), "MINWON_DEMO": "1", "MINWON_LOG_LEVEL": "ERROR",
           "MINWON_DATABASE_URL": database_url}
    run = lambda *args: subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    assert run("unlock", "citizen-0001").returncode == 0
    assert run("unlock", "citizen-9999").returncode == 1


def test_link_codes_are_eight_digits_single_use_and_guesses_are_budgeted(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    code = stores.accounts.issue_link_code(citizen_id)
    assert len(code) == 8 and code.isdigit()
    guesser = "dev-guesser-" + secrets.token_hex(3)
    for _ in range(LINK_FAILURES_PER_USER):
        attempt = stores.accounts.redeem_link_code(guesser, f"{secrets.randbelow(10**8):08d}", origin="198.51.100.7")
        assert attempt.citizen is None and not attempt.throttled
    # The budget is spent: even the right code is not looked at for this user now.
    assert stores.accounts.redeem_link_code(guesser, code, origin="198.51.100.7").throttled
    # From another address, a user with budget left links once; the code is then used up.
    assert stores.accounts.redeem_link_code("dev-owner-" + secrets.token_hex(3), code, origin="198.51.100.8").citizen
    assert stores.accounts.redeem_link_code("dev-other-" + secrets.token_hex(3), code, origin="198.51.100.9").citizen is None


def test_guesses_from_one_address_are_budgeted_across_users(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    code = stores.accounts.issue_link_code(citizen_id)
    address = "203.0.113." + str(secrets.randbelow(250))
    throttled = [stores.accounts.redeem_link_code(f"dev-sybil-{i}-{secrets.token_hex(2)}", "00000000",
                                                    origin=address).throttled for i in range(25)]
    assert throttled.index(True) == 20  # the address's budget, whatever user ids it makes up
    assert stores.accounts.redeem_link_code("dev-sybil-last", code, origin=address).throttled


# -- 3. secrets and data at rest ----------------------------------------------------------------------------


def test_no_stored_digest_is_the_plain_sha256_of_its_secret(stores, stores_citizen):
    citizen_id, user_id = stores_citizen()
    device = stores.devices.issue(user_id)
    app_token = stores.citizen_tokens.issue(citizen_id)
    code = stores.accounts.issue_link_code(citizen_id)
    plain = {hashlib.sha256(s.encode()).hexdigest() for s in (device, app_token, code, "demo-wallet-token-0001",
                                                              "demo-agency-key-nts", "demo-device-token-ko")}
    with stores.db.read() as conn:
        stored = {value for table, column in (("device_tokens", "token_hash"), ("citizen_app_tokens", "token_hash"),
                                              ("link_codes", "code_hash"), ("wallets", "token_hash"),
                                              ("agency_keys", "key_hash"))
                  for (value,) in conn.exec_driver_sql(f"select {column} from {table}").all()}
    assert stored and not stored & plain


def test_session_state_and_stored_replies_hold_no_tx_code_in_plain_text(live_server, services):
    reply = None
    session = None
    for text in ("주민등록표 등본 지갑으로 보내줘", "네", "1357"):
        body = {"text": text, "request_id": "tx-" + secrets.token_hex(4)}
        if session:
            body["session_id"] = session
        reply = converse(live_server, body, KO).json()
        session = reply["session_id"]
    assert reply is not None and "interpret-as=\"digits\"" in reply["ssml"]
    tx_code = reply["ssml"].split('interpret-as="digits">')[1].split("<")[0]
    assert tx_code.isdigit()
    with services.db.read() as conn:
        states = [s for (s,) in conn.execute(select(dialog_sessions.c.state))]
        replies = [r for (r,) in conn.execute(select(turn_replies.c.reply))]
    # Encrypted: neither the code nor any word of what was said is readable in the stored state or replies.
    assert states and replies
    assert not any(tx_code in s or "지갑" in s or "speech" in s for s in states + replies)


def test_data_directory_and_key_files_are_private_from_the_start(services):
    data_dir = services.settings.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("secret.key", "admin_api.key"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600


def test_demo_mode_is_off_by_default_and_refused_on_a_public_address(tmp_path):
    from settings import Settings

    assert Settings.from_env({"MINWON_DATA_DIR": str(tmp_path)}).demo is False
    env = {**os.environ, "MINWON_DATA_DIR": str(tmp_path), "MINWON_DEMO": "1", "MINWON_LOG_LEVEL": "ERROR"}
    result = subprocess.run([sys.executable, "app.py", "serve", "--host", "0.0.0.0", "--port", "0"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "refusing to serve demo data" in result.stderr


def test_link_codes_in_the_database_are_keyed_digests(stores, stores_citizen):
    citizen_id, _ = stores_citizen()
    code = stores.accounts.issue_link_code(citizen_id)
    with stores.db.read() as conn:
        hashes = [h for (h,) in conn.execute(select(link_codes.c.code_hash).where(link_codes.c.citizen_id == citizen_id))]
    assert hashes and hashlib.sha256(code.encode()).hexdigest() not in hashes


def test_parallel_first_guesses_of_a_new_user_all_count(stores):
    """The counters of a new user and address are created by whichever guess comes first; the others wait for
    it and count on its row (on PostgreSQL a plain insert would fail them on the primary key)."""
    guesser, address = "dev-racer-" + secrets.token_hex(3), "192.0.2." + str(secrets.randbelow(250))
    results, errors, barrier = [], [], threading.Barrier(LINK_FAILURES_PER_USER)

    def guess() -> None:
        barrier.wait()
        try:
            results.append(stores.accounts.redeem_link_code(guesser, f"{secrets.randbelow(10**8):08d}", origin=address))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guess) for _ in range(LINK_FAILURES_PER_USER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == LINK_FAILURES_PER_USER
    assert not any(r.citizen or r.throttled for r in results)
    assert stores.accounts.redeem_link_code(guesser, "00000000", origin=address).throttled
