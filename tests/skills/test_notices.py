"""Notifications by voice and over HTTP (issue 18), against the real server: an agency reports an application
issued, the next session's first reply has the headline (a count, nothing personal), the PIN, the reading, the
app API showing it read; the headline as a hint after a request, never in a PIN or confirmation prompt; putting
them off; turning spoken headlines off; and the attacks: another agency's certificate, another citizen's token or
notification, retries, and nothing personal in the logs. The end-to-end test also checks the pushes: a Kakao event and an Alexa
proactive event reach fake platform servers exactly once (tests/channels/test_pushes.py has the rest of them)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests

from domain.certificates import Certificate
from domain.clock import korean_today
from domain.notifications import NotificationSettings
from skills.engine import Turn
from skills.spoken import native_korean_count
from tests.conftest import ROOT
from tests.fake_platforms import pushes_to_fakes
from tests.security.test_logs import assert_not_logged, captured_logs

SCOURT_KEY = "test-agency-key-scourt-" + secrets.token_hex(4)
NTS_KEY = "test-agency-key-nts-" + secrets.token_hex(4)
PERSONAL_WORDS_KO = ("가족관계", "증명서", "등본", "소득", "법원", "월", "일에")
PERSONAL_WORDS_EN = ("certificate", "registration", "income", "court", "expire", "issued")


@pytest.fixture(scope="module")
def agency_keys(services):
    services.agency_keys.add("scourt", SCOURT_KEY)
    services.agency_keys.add("nts", NTS_KEY)


class Speaker:
    """A device speaking to /v1/converse on the live server, keeping its session like a speaker does."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token, self.session_id = base, token, None

    def say(self, text: str = "", **extra: object) -> dict:
        body: dict = {"text": text, **extra}
        if self.session_id:
            body["session_id"] = self.session_id
        response = requests.post(f"{self.base}/v1/converse", json=body, timeout=60,
                                 headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200, response.text
        reply = response.json()
        self.session_id = reply["session_id"]
        return reply


@pytest.fixture()
def citizen(services, new_citizen):
    """A fresh linked citizen with a device token, an app token and an application in progress at the court."""

    def make(locale: str = "ko-KR", pin: str = "2580") -> dict:
        citizen_id, user_id = new_citizen(pin=pin, locale=locale, name="김알림" if locale == "ko-KR" else "Nora Notice")
        certificate_id = f"cert-t-{secrets.token_hex(4)}"
        services.certificates.add(Certificate(
            id=certificate_id, citizen_id=citizen_id, doc_type="family-relation-certificate", state="in_progress",
            applied_on=korean_today() - timedelta(days=2), issued_on=None, valid_until=None))
        return {"id": citizen_id, "user": user_id, "pin": pin, "certificate": certificate_id,
                "device": services.devices.issue(user_id), "app": services.citizen_tokens.issue(citizen_id)}

    return make


def report(base: str, certificate_id: str, key: str, **body: object) -> requests.Response:
    return requests.post(f"{base}/v1/agencies/certificates/{certificate_id}/state", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {key}"})


def app_get(base: str, who: dict, citizen_id: str | None = None) -> requests.Response:
    return requests.get(f"{base}/v1/citizens/{citizen_id or who['id']}/notifications", timeout=30,
                        headers={"Authorization": f"Bearer {who['app']}"})


@pytest.fixture()
def platforms(services):
    """The shared app's pushes aimed at fake Kakao and Alexa servers on loopback (tests/fake_platforms.py: the real
    platforms are outside services) for one test; the service's own (unconfigured) settings again afterwards."""
    with pushes_to_fakes(services) as fake:
        yield fake


def wait_for_pushes(base: str, who: dict, count: int) -> list[dict]:
    """The app's view of the citizen's first notification's pushes once `count` of them are sent: the background
    worker sends them within seconds, and a pass of our own (below) may be the one that does."""
    deadline = time.monotonic() + 30
    while True:
        pushes = app_get(base, who).json()["notifications"][0]["pushes"]
        if sum(p["state"] == "sent" for p in pushes) >= count or time.monotonic() > deadline:
            return pushes
        time.sleep(0.2)


def test_end_to_end_issued_then_headline_pin_reading_and_the_app_shows_it_read(live_server, services, agency_keys,
                                                                               citizen, platforms):
    who = citizen()
    kakao_user, alexa_user = "kakao-e2e-" + secrets.token_hex(4), "amzn1.ask.account.E2E" + secrets.token_hex(4)
    services.accounts.link_user(f"kakao:{kakao_user}", who["id"])
    services.accounts.link_user(f"alexa:{alexa_user}", who["id"])
    # The citizen opts into Kakao and Alexa pushes in the app (no quiet hours: this test runs at any hour).
    opted = requests.put(f"{live_server}/v1/citizens/{who['id']}/notification-settings", timeout=30,
                         headers={"Authorization": f"Bearer {who['app']}"},
                         json={"channels": ["kakao", "alexa"], "quiet_hours": {"start": "00:00", "end": "00:00"}})
    assert opted.status_code == 200, opted.text
    until = (korean_today() + timedelta(days=90)).isoformat()
    with captured_logs() as logs:
        first = report(live_server, who["certificate"], SCOURT_KEY, request_id="court-1", state="issued",
                       valid_until=until)
        assert first.status_code == 200, first.text
        assert first.json() == {"certificate_id": who["certificate"], "state": "issued", "request_id": "court-1",
                                "valid_until": until, "repeated": False}
        retry = report(live_server, who["certificate"], SCOURT_KEY, request_id="court-1", state="issued",
                       valid_until=until)
        assert retry.status_code == 200 and retry.json()["repeated"] is True
        listed = app_get(live_server, who).json()
        assert listed["unread"] == 1 and [n["kind"] for n in listed["notifications"]] == ["certificate_issued"]

        speaker = Speaker(live_server, who["device"])
        opening = speaker.say("안녕")
        assert opening["speech"] == "안녕하세요. 새 알림이 한 건 있어요. 들으시겠어요?"
        assert opening["expects"] == "confirmation" and opening["intent"] == "greeting"
        pin_prompt = speaker.say("응")
        assert pin_prompt["expects"] == "pin" and "알림" not in pin_prompt["speech"]
        reading = speaker.say(who["pin"])
        assert reading["speech"] == "가족관계증명서 발급이 끝났어요."
        assert reading["intent"] == "notices_read"

        after = app_get(live_server, who).json()
        assert after["unread"] == 0 and after["notifications"][0]["read"] is True
        # The next session has nothing to announce.
        assert Speaker(live_server, who["device"]).say("안녕")["speech"].startswith("안녕하세요. 민원 안내")

        # The pushes: the worker's pass (ours here, or the service's own background one) sends each once.
        services.pushes.dispatch_due()
        pushes = wait_for_pushes(live_server, who, 2)
        assert {(p["channel"], p["state"], p["attempts"]) for p in pushes} == {("kakao", "sent", 1),
                                                                             ("alexa", "sent", 1)}
        services.pushes.dispatch_due()
        (kakao,) = [r for r in platforms.accepted("kakao") if r.body["user"][0]["id"] == kakao_user]
        (alexa,) = [r for r in platforms.accepted("alexa")
                    if r.body["relevantAudience"]["payload"]["user"] == alexa_user]
        assert kakao.body["event"]["data"]["text"] == "민원 안내에 새 알림이 있어요. 스피커나 앱에서 확인하세요."
        assert alexa.body["event"]["name"] == "AMAZON.MessageAlert.Activated"
        assert alexa.body["referenceId"] == after["notifications"][0]["id"]
        # Nothing personal in either push.
        pushed = json.dumps([kakao.body, alexa.body], ensure_ascii=False)
        assert not [word for word in ("김알림", "가족관계", "family", who["certificate"], until) if word in pushed]
    assert_not_logged(logs, who["pin"], who["app"], who["device"], SCOURT_KEY, "김알림", "가족관계증명서",
                      "family-relation-certificate", until, kakao_user, alexa_user, "Atc|fake-token")


def test_launch_leads_with_the_question_and_no_declines_for_now(live_server, services, citizen):
    who = citizen()
    services.report_certificate_state("scourt", who["certificate"], "r-" + who["id"], "refused", None)
    # A launch (Alexa's LaunchRequest, Kakao's welcome block) as the channels hand it to the engine.
    opening = services.dialog.converse(Turn(user_id=who["user"], event="launch", channel="alexa"))
    assert opening.speech == "새 알림이 한 건 있어요. 들으시겠어요?"
    assert opening.expects == "confirmation" and opening.intent == "launch"
    speaker = Speaker(live_server, who["device"])
    speaker.session_id = opening.session_id
    declined = speaker.say("아니")
    assert "알림 들려줘" in declined["speech"] and declined["expects"] is None
    assert services.notifications.unread_count(who["id"]) == 1
    # Asked for in its own words, later in the same session: read after the PIN.
    assert speaker.say("알림 들려줘")["expects"] == "pin"
    assert speaker.say(who["pin"])["speech"].startswith("가족관계증명서 신청이 반려됐어요.")
    assert services.notifications.unread_count(who["id"]) == 0


def test_a_request_first_is_handled_as_today_and_the_hint_follows_its_completion(live_server, services, citizen):
    who = citizen()
    services.report_certificate_state("scourt", who["certificate"], "r-" + who["id"], "issued", None)
    speaker = Speaker(live_server, who["device"])
    asked = speaker.say("내 정보 어디에 공유하고 있어")
    # The PIN prompt is today's, word for word, with no headline in it.
    assert asked["speech"] == "본인 확인을 위해 네 자리 비밀번호를 말씀해 주세요."
    assert asked["expects"] == "pin" and asked["intent"] == "consent_list"
    answer = speaker.say(who["pin"])
    assert answer["intent"] == "consent_list" and answer["expects"] is None
    assert answer["speech"].startswith("지금 정보를 공유하고 있는 곳이 없어요.")
    assert answer["speech"].endswith("새 알림이 한 건 있어요. 들으려면 '알림 들려줘'라고 말씀하세요.")
    # Once per session.
    assert "새 알림" not in speaker.say("도움말")["speech"]


def test_the_hint_is_never_inside_a_confirmation_prompt(live_server, services, citizen):
    who = citizen()
    services.report_certificate_state("scourt", who["certificate"], "r-" + who["id"], "issued", None)
    speaker = Speaker(live_server, who["device"])
    speaker.say("국민건강보험공단에 소득 정보 공유 켜줘")
    confirm = speaker.say(who["pin"])
    assert confirm["expects"] == "confirmation" and "새 알림" not in confirm["speech"]
    done = speaker.say("네")
    assert done["intent"] == "consent_on" and done["speech"].endswith("'알림 들려줘'라고 말씀하세요.")


def test_defer_and_turn_off_spoken_headlines(live_server, services, citizen):
    who = citizen()
    services.report_certificate_state("scourt", who["certificate"], "r-" + who["id"], "issued", None)
    speaker = Speaker(live_server, who["device"])
    deferred = speaker.say("알림 다음에")
    assert deferred["intent"] == "notices_defer" and deferred["speech"] == "알겠어요. 알림은 다음에 다시 알려 드릴게요."
    assert "새 알림" not in speaker.say("도움말")["speech"]
    # The next session announces it again: deferred, not read.
    speaker = Speaker(live_server, who["device"])
    assert speaker.say("안녕")["speech"].startswith("안녕하세요. 새 알림이 한 건")
    assert speaker.say("알림 꺼 줘")["expects"] == "pin"
    assert speaker.say(who["pin"])["expects"] == "confirmation"
    assert speaker.say("응")["speech"].startswith("새 알림 안내를 껐어요.")
    assert services.notifications.settings(who["id"]).spoken_headlines is False
    assert Speaker(live_server, who["device"]).say("안녕")["speech"].startswith("안녕하세요. 민원 안내")
    # Still there for the app.
    assert app_get(live_server, who).json()["unread"] == 1


def test_english_headline_and_reading(live_server, services, citizen):
    who = citizen(locale="en-US", pin="9753")
    services.report_certificate_state("scourt", who["certificate"], "r-" + who["id"], "issued", None)
    speaker = Speaker(live_server, who["device"])
    opening = speaker.say("hello")
    assert opening["speech"] == "Hello. You have one new notice. Want to hear it?"
    assert not any(word in opening["speech"].lower() for word in PERSONAL_WORDS_EN)
    speaker.say("yes")
    assert speaker.say(who["pin"])["speech"] == "Your family relation certificate has been issued."


def test_headlines_before_the_pin_say_nothing_personal(live_server, services, citizen):
    who = citizen()
    services.report_certificate_state("scourt", who["certificate"], "r-" + who["id"], "issued", None)
    with services.db.transaction() as conn:
        from domain.certificates import certificates

        conn.execute(certificates.insert().values(
            id=f"cert-t-{secrets.token_hex(4)}", citizen_id=who["id"], doc_type="income-amount-certificate",
            state="issued", issued_on=korean_today() - timedelta(days=80),
            valid_until=korean_today() + timedelta(days=4)))
    services.notify_scan()
    speaker = Speaker(live_server, who["device"])
    opening = speaker.say("안녕하세요")
    assert opening["speech"] == "안녕하세요. 새 알림이 두 건 있어요. 들으시겠어요?"
    assert not any(word in opening["speech"] + opening["ssml"] for word in PERSONAL_WORDS_KO)
    assert not any(word in (opening.get("display") or {}).get("body", "") for word in PERSONAL_WORDS_KO)
    speaker.say("네")
    reading = speaker.say(who["pin"])["speech"]
    assert reading.startswith("새 알림이 두 건 있어요. 첫째, 가족관계증명서 발급이 끝났어요. 둘째, 소득금액증명 유효기간이")


def test_agency_attacks(live_server, agency_keys, citizen):
    who = citizen()
    # No key, a wrong key: 401. Another agency's document: the same 404 as an unknown id, nothing changes.
    assert report(live_server, who["certificate"], "nope", request_id="x", state="issued").status_code == 401
    assert requests.post(f"{live_server}/v1/agencies/certificates/{who['certificate']}/state",
                         json={"request_id": "x", "state": "issued"}, timeout=30).status_code == 401
    foreign = report(live_server, who["certificate"], NTS_KEY, request_id="x", state="issued")
    unknown = report(live_server, "cert-does-not-exist", NTS_KEY, request_id="x", state="issued")
    assert foreign.status_code == unknown.status_code == 404 and foreign.json() == unknown.json()
    for body in ({"state": "issued"}, {"request_id": "", "state": "issued"}, {"request_id": "x", "state": "expired"},
                 {"request_id": "x", "state": "issued", "valid_until": "tomorrow"},
                 {"request_id": "x", "state": "refused", "valid_until": "2030-01-01"}, {"request_id": 5, "state": "issued"}):
        response = report(live_server, who["certificate"], SCOURT_KEY, **body)
        assert response.status_code == 400 and "error" in response.json(), body
    assert app_get(live_server, who).json()["unread"] == 0
    assert report(live_server, who["certificate"], SCOURT_KEY, request_id="y", state="refused").status_code == 200
    conflict = report(live_server, who["certificate"], SCOURT_KEY, request_id="y", state="issued")
    assert conflict.status_code == 409
    assert [n["kind"] for n in app_get(live_server, who).json()["notifications"]] == ["certificate_refused"]


def test_citizen_app_attacks_and_settings(live_server, services, citizen):
    owner, other = citizen(), citizen()
    services.report_certificate_state("scourt", owner["certificate"], "r-" + owner["id"], "issued", None)
    [item] = app_get(live_server, owner).json()["notifications"]
    # Another citizen's token: 403 on the owner's list; the owner's notification id is unknown under its own id.
    assert app_get(live_server, other, owner["id"]).status_code == 403
    assert requests.get(f"{live_server}/v1/citizens/{owner['id']}/notifications", timeout=30).status_code == 401
    stolen = requests.post(f"{live_server}/v1/citizens/{other['id']}/notifications/{item['id']}/read", timeout=30,
                           headers={"Authorization": f"Bearer {other['app']}"})
    assert stolen.status_code == 404
    forbidden = requests.post(f"{live_server}/v1/citizens/{owner['id']}/notifications/{item['id']}/read", timeout=30,
                              headers={"Authorization": f"Bearer {other['app']}"})
    assert forbidden.status_code == 403
    assert services.notifications.unread_count(owner["id"]) == 1
    read = requests.post(f"{live_server}/v1/citizens/{owner['id']}/notifications/{item['id']}/read", timeout=30,
                         headers={"Authorization": f"Bearer {owner['app']}"})
    assert read.status_code == 200 and read.json()["read"] is True
    again = requests.post(f"{live_server}/v1/citizens/{owner['id']}/notifications/{item['id']}/read", timeout=30,
                          headers={"Authorization": f"Bearer {owner['app']}"})
    assert again.json()["read_at"] == read.json()["read_at"]

    url = f"{live_server}/v1/citizens/{owner['id']}/notification-settings"
    auth = {"Authorization": f"Bearer {owner['app']}"}
    assert requests.get(url, headers=auth, timeout=30).json() == {
        "spoken_headlines": True, "channels": [],
        "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "Asia/Seoul"}}
    changed = requests.put(url, headers=auth, timeout=30, json={"channels": ["kakao", "alexa"],
                                                                 "quiet_hours": {"start": "22:00", "end": "07:30"}})
    assert changed.status_code == 200 and changed.json()["channels"] == ["kakao", "alexa"]
    for bad in ({"channels": ["sms"]}, {"spoken_headlines": "no"}, {"quiet_hours": {"start": "25:00"}},
                {"quiet_hours": {"start": "22:00", "timezone": "UTC"}}, {"colour": "red"}, {"channels": "kakao"}):
        response = requests.put(url, headers=auth, timeout=30, json=bad)
        assert response.status_code == 400 and "error" in response.json(), bad
    assert requests.put(url, headers={"Authorization": f"Bearer {other['app']}"}, timeout=30,
                        json={"spoken_headlines": False}).status_code == 403
    assert services.notifications.settings(owner["id"]).to_api() == changed.json()


def test_cli_notify_scan_and_certificate_state(tmp_path):
    env = {"MINWON_DATA_DIR": str(tmp_path), "MINWON_DEMO": "1", "PATH": "/usr/bin:/bin",
           "MINWON_SECRET_KEY": "cli-test-secret-0123456789abcdef0123456789abcdef"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)

    scan = run("notify-scan")
    assert scan.returncode == 0, scan.stderr
    assert scan.stdout.strip() == "0"  # seeding raised the demo's reminders already; the pass finds nothing new
    applied = run("certificate-state", "scourt", "cert-0001-frc", "issued", "--request-id", "cli-1",
                  "--valid-until", "2030-01-31")
    assert applied.returncode == 0, applied.stderr
    assert '"repeated": false' in applied.stdout
    repeated = run("certificate-state", "scourt", "cert-0001-frc", "issued", "--request-id", "cli-1",
                   "--valid-until", "2030-01-31")
    assert repeated.returncode == 0 and '"repeated": true' in repeated.stdout
    foreign = run("certificate-state", "nts", "cert-0001-frc", "refused")
    assert foreign.returncode == 1 and "no certificate" in foreign.stderr


def test_the_demo_citizen_hears_the_seeded_reminders(live_server, services):
    """`make run`'s demo: the income certificate ending in ten days (and the expired eligibility certificate) are
    announced when the demo speaker opens a session (the shared test app turns the demo's headlines off)."""
    store = services.notifications
    store.save_settings("citizen-0001", NotificationSettings())
    try:
        opening = Speaker(live_server, "demo-device-token-ko").say("안녕")
        count = store.unread_count("citizen-0001")
        assert count >= 2
        assert opening["speech"] == f"안녕하세요. 새 알림이 {native_korean_count(count, '건')} 있어요. 들으시겠어요?"
    finally:
        store.save_settings("citizen-0001", NotificationSettings(spoken_headlines=False))
