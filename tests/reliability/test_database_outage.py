"""PostgreSQL goes away in the middle of a turn and comes back: the turn answers 503 with Retry-After and a JSON
error (a speaker platform gets its own busy answer instead), nothing of the turn's change is in the database,
and once the server is back the next request reconnects and the retried request makes the change once.

The server is stopped from inside the turn, just before the statement that would make the change's second row
(the consent event after its record was read and its chain head locked; the push outbox row after its offer), so
the outage falls in the middle of a transaction every time. This module runs its own PostgreSQL cluster, so that
stopping it disturbs no other test.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from domain.consent_ledger import consent_chain_head, consent_events, consent_records
from local_postgres import NOT_INSTALLED, PostgresCluster, find_bin_dir
from skills.sessions import turn_claims, turn_replies
from tests.channels.conftest import load_fixture
from tests.conftest import DEMO_DEVICE_TOKENS, Conversation
from tests.nodes import node_apps
from wallet_bridge.tables import offers, outbox

NUGU_TOKEN = "test-nugu-" + secrets.token_hex(8)
DEMO_PIN = "1357"


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(NOT_INSTALLED, pytrace=False)
    # Durable, as a production server is: what was committed before the crash is there after it.
    cluster = PostgresCluster(bin_dir, durable=True)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture()
def app(own_cluster, tmp_path):
    with node_apps(tmp_path, own_cluster.new_database(), count=1, MINWON_NUGU_TOKEN=NUGU_TOKEN) as (only,):
        yield only
    if not own_cluster.started:  # a failed test must not leave the next one without its server
        own_cluster.start_server()


@contextmanager
def server_stops_before(engine: Engine, cluster: PostgresCluster, statement: str, mode: str) -> Iterator[list[str]]:
    """Stops the PostgreSQL server (`pg_ctl stop -m mode`) the first time `engine` is about to run a statement that
    starts with `statement`; yields the list that records it happened."""
    stopped: list[str] = []

    def before_execute(_conn, _cursor, sql: str, *_args: object) -> None:
        if not stopped and sql.startswith(statement):
            stopped.append(sql.split("(", 1)[0].strip())
            cluster.stop_server(mode)

    event.listen(engine, "before_cursor_execute", before_execute)
    try:
        yield stopped
    finally:
        event.remove(engine, "before_cursor_execute", before_execute)


def speaker(app) -> Conversation:
    return Conversation(app.test_client(), "demo-user-ko", token=DEMO_DEVICE_TOKENS["demo-user-ko"])


def converse(app, text: str, session_id: str, request_id: str):
    return app.test_client().post(
        "/v1/converse", json={"text": text, "session_id": session_id, "request_id": request_id},
        headers={"Authorization": f"Bearer {DEMO_DEVICE_TOKENS['demo-user-ko']}"})


def nugu_launch(app):
    body = load_fixture("nugu", "backend_proxy_request_foodfighter.json")
    body["action"] = {"actionName": "launch", "parameters": {}}
    body["context"]["session"].update(accessToken="nugu-oauth-" + secrets.token_hex(8), id=secrets.token_hex(6))
    return app.test_client().post("/nugu/launch", json=body, headers={"Authorization": f"token {NUGU_TOKEN}"})


def assert_storage_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "1"
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["code"] == "storage_unavailable"


def consent_state(app) -> dict:
    with app.extensions["minwon"].db.read() as conn:
        head = conn.execute(select(consent_chain_head)).mappings().one()
        return {
            "events": conn.execute(select(func.count()).select_from(consent_events)).scalar(),
            "head": (head["seq"], head["hash"]),
            "records": sorted(tuple(row) for row in conn.execute(
                select(consent_records.c.id, consent_records.c.status, consent_records.c.since)).all()),
            "replies": conn.execute(select(func.count()).select_from(turn_replies)).scalar(),
        }


def claims(app) -> list[str]:
    with app.extensions["minwon"].db.read() as conn:
        return list(conn.execute(select(turn_claims.c.owner)).scalars())


def test_postgresql_stopping_mid_consent_change_gives_503_and_writes_nothing_and_the_retry_makes_it_once(
        app, own_cluster):
    services = app.extensions["minwon"]
    talk = speaker(app)
    talk.say("국민건강보험공단에 소득 정보 공유 꺼줘")
    assert talk.say(DEMO_PIN)["expects"] == "confirmation"
    before = consent_state(app)

    with server_stops_before(services.db.engine, own_cluster, "INSERT INTO consent_events", "immediate") as stopped:
        response = converse(app, "네", talk.session_id, "outage-consent")
    assert stopped == ["INSERT INTO consent_events"] and not own_cluster.started
    assert_storage_unavailable(response)
    # While the server is down: a new request fails the same way at its first query, and a speaker platform
    # gets its own answer (NUGU: HTTP 200, result code serviceBusy, a spoken apology).
    assert_storage_unavailable(converse(app, "도움말", talk.session_id, "outage-other"))
    busy = nugu_launch(app)
    assert busy.status_code == 200 and busy.get_json()["resultCode"] == "serviceBusy"
    assert "잠시 후에 다시" in busy.get_json()["output"]["ment"]

    own_cluster.start_server()
    assert consent_state(app) == before  # no event, no head move, no status change, no stored reply
    # The turn's claim on its request id could not be dropped while the server was down; it is this node's,
    # and this node takes it over for the retry at once (another node would after its lease).
    assert claims(app) == [services.sessions.node_id]

    retry = converse(app, "네", talk.session_id, "outage-consent")
    assert retry.status_code == 200, retry.get_json()
    assert retry.get_json()["speech"].startswith("국민건강보험공단에 소득 정보 공유를 껐어요.")
    after = consent_state(app)
    assert after["events"] == before["events"] + 1 and after["replies"] == before["replies"] + 1
    assert claims(app) == []
    report = services.consents.verify_chain()
    assert report.ok, report.describe()
    # The retry's copy once more gets the stored reply, and the pool serves new requests as before.
    assert converse(app, "네", talk.session_id, "outage-consent").get_json() == retry.get_json()
    assert converse(app, "도움말", talk.session_id, "after-outage").status_code == 200


def test_postgresql_stopping_mid_wallet_send_leaves_no_offer_without_its_push_and_the_retry_sends_once(
        app, own_cluster):
    services = app.extensions["minwon"]
    services.wallets.set_push_url("wallet-0001", "https://wallet.example/push")
    talk = speaker(app)
    talk.say("내 증명서 상태 알려줘")
    talk.say(DEMO_PIN)
    assert talk.say("등본 지갑으로 보내줘")["expects"] == "confirmation"

    with server_stops_before(services.db.engine, own_cluster, "INSERT INTO wallet_outbox", "fast") as stopped:
        response = converse(app, "네", talk.session_id, "outage-wallet")
    assert stopped == ["INSERT INTO wallet_outbox"]
    assert_storage_unavailable(response)

    own_cluster.start_server()
    with services.db.read() as conn:
        # The offer was inserted in the same transaction as its push row: neither is there.
        # (The demo seeding's mobile ID offer has no push row and is not counted.)
        assert conn.execute(select(func.count()).select_from(offers).where(offers.c.doc_type != "mobile-id")).scalar() == 0
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 0

    retry = converse(app, "네", talk.session_id, "outage-wallet")
    assert retry.status_code == 200, retry.get_json()
    assert "전자지갑으로 보냈어요" in retry.get_json()["speech"]
    with services.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(offers).where(offers.c.doc_type != "mobile-id")).scalar() == 1
        assert conn.execute(select(outbox.c.url)).scalars().all() == ["https://wallet.example/push"]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_restarted_between_two_requests_is_noticed_before_the_next_one_uses_its_connection(
        app, own_cluster, mode):
    """Pre-ping without a round trip per checkout: the pooled connections were used a moment ago (no ping by
    age), but the server that ended them said so on their sockets, so each is pinged, found dead and replaced
    before the request uses it; the request does not see the restart."""
    talk = speaker(app)
    session = talk.say("도움말")
    assert session["intent"] == "help"
    own_cluster.stop_server(mode)
    own_cluster.start_server()
    assert converse(app, "도움말", talk.session_id, f"after-{mode}-restart").status_code == 200
    assert converse(app, "도움말", talk.session_id, f"after-{mode}-restart-2").status_code == 200
