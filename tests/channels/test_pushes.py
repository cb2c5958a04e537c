"""Notification pushes (issue 18, item 3), by the delivery worker's one pass (`PushDelivery.dispatch_due`) with a
test clock, against the fake platforms of tests/fake_platforms.py on loopback: the request shapes and credentials,
one push per notification and channel, quiet hours, retries with backoff and giving up after a day, the Alexa token
refresh, unconfigured platforms and citizens nobody can be reached at, the wallet's credential events, and two
nodes (PostgreSQL) racing for the same rows or taking over a crashed node's claim."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.pushes import GENERIC_TEXT, PushConfig, PushDelivery
from channels.speaker_ids import speaker_user_id
from domain.certificates import Certificate
from domain.clock import KST
from domain.notifications import CREDENTIAL_REVOKED, NotificationSettings, raise_notification
from domain.push_deliveries import FAILED, HELD, NO_RECIPIENT, NOT_CONFIGURED, OPTED_OUT, PENDING, SENT, PushQueue
from outbound import OutboundPolicy
from services import Services
from tests.fake_platforms import (
    ALEXA_CLIENT_SECRET,
    KAKAO_PATH,
    KAKAO_REST_KEY,
    FakePlatforms,
    fake_platforms,
)
from tests.nodes import run_together, running_nodes
from tests.security.test_logs import assert_not_logged, captured_logs
from tests.wallet_bridge.conftest import SettableClock

# Noon in Seoul: outside the default quiet hours (21:00–08:00).
NOON_KST = datetime(2026, 11, 30, 12, 0, tzinfo=KST).astimezone(UTC)
KAKAO_USER = "kakao-bot-user-key-7a6b"
ALEXA_USER = "amzn1.ask.account.TESTPUSHUSER0001"
PERSONAL = ("가족관계", "family-relation-certificate", "김푸시", "cert-p-", "scourt", "citizen-p-")


@pytest.fixture()
def platforms() -> Iterator[FakePlatforms]:
    with fake_platforms() as fake:
        yield fake


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[Services]:
    with running_nodes(tmp_path, f"sqlite:///{tmp_path / 'push.sqlite3'}", count=1) as nodes:
        yield nodes[0]


def delivery(node: Services, clock: SettableClock, config: PushConfig, node_id: str = "node-a") -> PushDelivery:
    """The node's pushes on the test clock (its state changes too), aimed at the fakes."""
    node.clock = clock
    node.notifications.clock = clock
    return PushDelivery(PushQueue(node.db, clock), node.notifications, node.accounts, node.wallets, config, clock,
                        outbound=OutboundPolicy(allow_loopback_http=True), node_id=node_id,
                        addresses=node.push_addresses)


def citizen(node: Services, channels: tuple[str, ...] = ("kakao", "alexa"), *, link: bool = True,
            locale: str = "ko-KR", **quiet: str) -> dict:
    """A citizen linked on Kakao and Alexa, opted into `channels`, with an application in progress at the court."""
    citizen_id = f"citizen-p-{secrets.token_hex(4)}"
    node.accounts.create_citizen(citizen_id, "김푸시", locale, "2580")
    kakao_user, alexa_user = f"{KAKAO_USER}-{secrets.token_hex(4)}", f"{ALEXA_USER}{secrets.token_hex(4)}"
    if link:
        node.accounts.link_user(f"kakao:{kakao_user}", citizen_id)
        node.accounts.link_user(f"alexa:{alexa_user}", citizen_id)
    node.notifications.save_settings(citizen_id, NotificationSettings(channels=channels, **quiet))
    certificate_id = f"cert-p-{secrets.token_hex(4)}"
    node.certificates.add(Certificate(id=certificate_id, citizen_id=citizen_id, doc_type="family-relation-certificate",
                                      state="in_progress", applied_on=NOON_KST.date() - timedelta(days=2),
                                      issued_on=None, valid_until=None))
    return {"id": citizen_id, "certificate": certificate_id, "kakao": kakao_user, "alexa": alexa_user}


def issue(node: Services, who: dict, request_id: str = "court-1") -> None:
    report = node.report_certificate_state("scourt", who["certificate"], request_id, "issued", None)
    assert report.outcome in ("applied", "repeated"), report.outcome


def push_states(node: Services, who: dict) -> dict[str, str]:
    (states,) = node.pushes.queue.states_for(who["id"]).values()
    return {p.channel: p.state for p in states}


def test_one_kakao_event_and_one_alexa_event_of_the_documented_shape(node, platforms):
    clock = SettableClock(NOON_KST)
    pushes = delivery(node, clock, platforms.config())
    who = citizen(node)
    with captured_logs() as logs:
        issue(node, who)
        issue(node, who)  # the agency's retry: the same notification, nothing queued twice
        report = pushes.dispatch_due()
        again = pushes.dispatch_due()
    assert report.outcomes == {SENT: 2} and again.outcomes == {}
    assert push_states(node, who) == {"kakao": SENT, "alexa": SENT}

    (kakao,) = platforms.accepted("kakao")
    assert kakao.path == KAKAO_PATH and kakao.headers["authorization"] == f"KakaoAK {KAKAO_REST_KEY}"
    assert kakao.body == {"event": {"name": "minwon_notice", "data": {"text": GENERIC_TEXT["ko-KR"]}},
                          "user": [{"type": "botUserKey", "id": who["kakao"]}],
                          "params": {"text": GENERIC_TEXT["ko-KR"]}}
    (token,) = platforms.accepted("token")
    assert token.body["grant_type"] == "client_credentials" and token.body["scope"] == "alexa::proactive_events"
    (alexa,) = platforms.accepted("alexa")
    assert alexa.headers["authorization"] == "Bearer Atc|fake-token-1"
    event = alexa.body
    (notification,) = node.notifications.for_citizen(who["id"])
    assert event["referenceId"] == notification.id
    assert event["timestamp"] == "2026-11-30T03:00:00.000Z" and event["expiryTime"] == "2026-12-01T02:00:00.000Z"
    assert event["event"] == {"name": "AMAZON.MessageAlert.Activated", "payload": {
        "state": {"status": "UNREAD", "freshness": "NEW"},
        "messageGroup": {"creator": {"name": "Minwon Voice"}, "count": 1, "urgency": "URGENT"}}}
    assert event["relevantAudience"] == {"type": "Unicast", "payload": {"user": who["alexa"]}}
    # Nothing personal leaves in a push, and no credential reaches the logs.
    sent = json.dumps([r.body for r in platforms.received], ensure_ascii=False)
    assert not [word for word in PERSONAL if word in sent]
    assert_not_logged(logs, KAKAO_REST_KEY, ALEXA_CLIENT_SECRET, "Atc|fake-token-1", who["kakao"], who["alexa"],
                      "김푸시")


def test_an_alexa_user_id_too_long_to_keep_is_addressed_by_the_id_its_channel_sealed(node, platforms):
    pushes = delivery(node, SettableClock(NOON_KST), platforms.config())
    who = citizen(node, ("alexa",), link=False)
    # Real Alexa userIds are longer than a user id may be: the service keeps a digest (channels/speaker_ids.py).
    long_id = "amzn1.ask.account." + secrets.token_hex(110).upper()
    user_id = speaker_user_id("alexa", long_id)
    assert user_id.startswith("alexa:h:")
    node.accounts.link_user(user_id, who["id"])
    issue(node, who)
    assert pushes.dispatch_due().outcomes == {NO_RECIPIENT: 1}  # its id was never stored: nobody to address
    node.push_addresses.remember(user_id, long_id)
    other = citizen(node, ("alexa",), link=False)
    node.accounts.link_user(user_id, other["id"])
    issue(node, other, "court-2")
    assert pushes.dispatch_due().outcomes == {SENT: 1}
    (alexa,) = platforms.accepted("alexa")
    assert alexa.body["relevantAudience"]["payload"]["user"] == long_id
    with node.db.read() as conn:
        stored = conn.exec_driver_sql("SELECT address_enc FROM push_addresses").scalars().all()
    assert stored and long_id not in stored[0]  # sealed at rest


def test_an_english_speaking_citizen_gets_the_english_text(node, platforms):
    pushes = delivery(node, SettableClock(NOON_KST), platforms.config())
    who = citizen(node, ("kakao",), locale="en-US")
    issue(node, who)
    pushes.dispatch_due()
    (kakao,) = platforms.accepted("kakao")
    assert kakao.body["event"]["data"]["text"] == "You have a new notice from Minwon Voice."


def test_quiet_hours_hold_pushes_until_they_end_and_the_spoken_headline_is_unaffected(node, platforms):
    late = datetime(2026, 11, 30, 23, 0, tzinfo=KST).astimezone(UTC)
    clock = SettableClock(late)
    pushes = delivery(node, clock, platforms.config())
    who = citizen(node)
    issue(node, who)
    assert pushes.dispatch_due().outcomes == {HELD: 2}
    (states,) = node.pushes.queue.states_for(who["id"]).values()
    morning = datetime(2026, 12, 1, 8, 0, tzinfo=KST)
    assert {(p.state, p.next_attempt_at, p.attempts) for p in states} == {(HELD, morning, 0)}
    assert platforms.received == []
    assert node.notifications.headline_count(who["id"]) == 1
    clock.now = morning.astimezone(UTC) - timedelta(minutes=1)
    assert pushes.dispatch_due().outcomes == {}
    clock.now = morning.astimezone(UTC)
    assert pushes.dispatch_due().outcomes == {SENT: 2}
    assert len(platforms.accepted("kakao")) == 1 and len(platforms.accepted("alexa")) == 1


def test_a_citizens_own_quiet_hours(node, platforms):
    clock = SettableClock(NOON_KST)
    pushes = delivery(node, clock, platforms.config())
    who = citizen(node, ("kakao",), quiet_start="11:30", quiet_end="13:15")
    issue(node, who)
    assert pushes.dispatch_due().outcomes == {HELD: 1}
    clock.now = datetime(2026, 11, 30, 13, 15, tzinfo=KST).astimezone(UTC)
    assert pushes.dispatch_due().outcomes == {SENT: 1}


def test_a_failing_platform_is_retried_with_backoff_and_marked_failed_after_a_day(node, platforms):
    clock = SettableClock(NOON_KST)
    pushes = delivery(node, clock, platforms.config())
    who = citizen(node, ("kakao",), quiet_start="00:00", quiet_end="00:00")  # no quiet hours: retried all day
    issue(node, who)
    platforms.answer_next("kakao", *[500] * 100)
    assert pushes.dispatch_due().outcomes == {PENDING: 1}
    # Not retried before its backoff: a pass a second later sends nothing.
    clock.advance(seconds=1)
    assert pushes.dispatch_due().outcomes == {}
    delays = []
    last = clock.now
    while push_states(node, who)["kakao"] == PENDING:
        (states,) = node.pushes.queue.states_for(who["id"]).values()
        due = states[0].next_attempt_at
        assert due is not None
        delays.append((due - last).total_seconds())
        clock.now = last = due
        pushes.dispatch_due()
        assert len(delays) < 60, "retried too often"
    attempts = len(platforms.all("kakao"))
    assert push_states(node, who) == {"kakao": FAILED}
    # 30 s, 60 s, 120 s … capped at an hour; failed once a day had passed since the notification.
    assert delays[:4] == [29.0, 60.0, 120.0, 240.0] and max(delays) == 3600.0
    assert clock.now - NOON_KST >= timedelta(days=1) and attempts == len(delays) + 1
    assert pushes.dispatch_due().outcomes == {} and len(platforms.all("kakao")) == attempts
    # A platform that recovers before the day is over gets it.
    other = citizen(node, ("kakao",))
    issue(node, other, "court-2")
    platforms.scripted.clear()
    platforms.answer_next("kakao", 503)
    pushes.dispatch_due()
    clock.advance(seconds=30)
    pushes.dispatch_due()
    assert push_states(node, other) == {"kakao": SENT}


def test_alexa_token_cached_then_refreshed_once_on_401(node, platforms):
    clock = SettableClock(NOON_KST)
    pushes = delivery(node, clock, platforms.config())
    first, second, third = (citizen(node, ("alexa",)) for _ in range(3))
    issue(node, first)
    issue(node, second, "court-2")
    assert pushes.dispatch_due().outcomes == {SENT: 2}
    assert len(platforms.accepted("token")) == 1  # one token for both events
    platforms.revoke_tokens()
    issue(node, third, "court-3")
    assert pushes.dispatch_due().outcomes == {SENT: 1}
    assert len(platforms.accepted("token")) == 2
    assert [r.status for r in platforms.all("alexa")] == [202, 202, 401, 202]
    # A 401 again after the refresh: a failed attempt, retried later (not a loop of token requests).
    fourth = citizen(node, ("alexa",))
    issue(node, fourth, "court-4")
    platforms.answer_next("alexa", 401, 401)
    assert pushes.dispatch_due().outcomes == {PENDING: 1}
    assert len(platforms.accepted("token")) == 3


def test_an_unconfigured_platform_sends_nothing_and_says_so(node, platforms):
    config = platforms.config(alexa_client_secret="", alexa_events_url="")
    pushes = delivery(node, SettableClock(NOON_KST), config)
    who = citizen(node)
    issue(node, who)
    assert pushes.dispatch_due().outcomes == {SENT: 1, NOT_CONFIGURED: 1}
    assert push_states(node, who) == {"kakao": SENT, "alexa": NOT_CONFIGURED}
    assert platforms.all("alexa") == [] and platforms.all("token") == []
    # Nothing at all configured (the service's defaults): nothing sent, no error.
    bare = delivery(node, SettableClock(NOON_KST), PushConfig.from_settings(node.settings))
    other = citizen(node)
    issue(node, other, "court-2")
    assert bare.dispatch_due().outcomes == {NOT_CONFIGURED: 2}


def test_citizens_nobody_can_reach_keep_their_notifications_for_the_app(node, platforms):
    pushes = delivery(node, SettableClock(NOON_KST), platforms.config())
    unlinked = citizen(node, link=False)
    no_pushes = citizen(node, ())
    issue(node, unlinked)
    issue(node, no_pushes, "court-2")
    assert pushes.dispatch_due().outcomes == {NO_RECIPIENT: 2}
    assert push_states(node, unlinked) == {"kakao": NO_RECIPIENT, "alexa": NO_RECIPIENT}
    assert node.pushes.queue.states_for(no_pushes["id"]) == {}
    assert platforms.received == []
    for who in (unlinked, no_pushes):
        assert [n.kind for n in node.notifications.for_citizen(who["id"])] == ["certificate_issued"]


def test_a_channel_turned_off_before_the_push_went_out_sends_nothing(node, platforms):
    pushes = delivery(node, SettableClock(NOON_KST), platforms.config())
    who = citizen(node)
    issue(node, who)
    node.notifications.save_settings(who["id"], NotificationSettings(channels=("alexa",)))
    assert pushes.dispatch_due().outcomes == {OPTED_OUT: 1, SENT: 1}
    assert push_states(node, who) == {"kakao": OPTED_OUT, "alexa": SENT}
    assert platforms.all("kakao") == []


def test_the_wallet_gets_credential_events_only(node, platforms):
    clock = SettableClock(NOON_KST)
    pushes = delivery(node, clock, platforms.config())
    who = citizen(node, ("wallet",))
    node.wallets.register(f"wallet-{who['id']}", who["id"], secrets.token_hex(8), push_url=platforms.wallet_url)
    issue(node, who)  # a certificate event: nothing for the wallet
    with node.db.transaction() as conn:
        raise_notification(conn, who["id"], CREDENTIAL_REVOKED, "urn:uuid:test-credential", "revoked",
                           {"doc_type": "family-relation-certificate"}, clock())
    assert pushes.dispatch_due().outcomes == {SENT: 1}
    (pushed,) = platforms.accepted("wallet")
    revoked = next(n for n in node.notifications.for_citizen(who["id"]) if n.kind == CREDENTIAL_REVOKED)
    assert pushed.headers["idempotency-key"] == f"notice:{revoked.id}"
    assert pushed.body == {"type": "notice", "notice_id": revoked.id, "text": GENERIC_TEXT["ko-KR"]}


@pytest.fixture()
def pg_nodes(postgres, tmp_path: Path) -> Iterator[list[Services]]:
    with running_nodes(tmp_path, postgres.new_database(), count=2) as nodes:
        yield nodes


def test_two_nodes_racing_send_each_push_once(pg_nodes, platforms):
    clock = SettableClock(NOON_KST)
    node_a, node_b = pg_nodes
    first = delivery(node_a, clock, platforms.config(), node_id="node-a")
    second = delivery(node_b, clock, platforms.config(), node_id="node-b")
    people = [citizen(node_a) for _ in range(6)]
    for number, who in enumerate(people):
        issue(node_a, who, f"court-{number}")
    # The same state change reported to both nodes at once: still one notification.
    run_together([lambda: issue(node_a, people[0], "court-0"), lambda: issue(node_b, people[0], "court-0")])
    reports = run_together([first.dispatch_due, second.dispatch_due])
    assert sum(r.outcomes.get(SENT, 0) for r in reports) == 12
    kakao_users = sorted(r.body["user"][0]["id"] for r in platforms.accepted("kakao"))
    alexa_users = sorted(r.body["relevantAudience"]["payload"]["user"] for r in platforms.accepted("alexa"))
    assert kakao_users == sorted(p["kakao"] for p in people)
    assert alexa_users == sorted(p["alexa"] for p in people)
    assert run_together([first.dispatch_due, second.dispatch_due])[0].outcomes == {}


def test_a_crashed_nodes_claim_runs_out_and_another_node_sends_the_push(pg_nodes, platforms):
    clock = SettableClock(NOON_KST)
    node_a, node_b = pg_nodes
    crashed = delivery(node_a, clock, platforms.config(), node_id="node-a")
    survivor = delivery(node_b, clock, platforms.config(), node_id="node-b")
    who = citizen(node_a, ("kakao",))
    issue(node_a, who)
    claim = crashed.queue.claim_next("node-a", timedelta(seconds=60))  # claimed, then the node died
    assert claim is not None
    assert survivor.dispatch_due().outcomes == {}  # the claim still holds
    clock.advance(seconds=61)
    assert survivor.dispatch_due().outcomes == {SENT: 1}
    # The crashed node, back, cannot overwrite the survivor's outcome.
    assert crashed.deliver(claim) is None
    assert push_states(node_a, who) == {"kakao": SENT}
    assert len(platforms.accepted("kakao")) == 2  # at least once: the late node's send went out too
