"""What a turn costs in database round trips on PostgreSQL, counted (not timed): every statement, the BEGIN, COMMIT
and ROLLBACK psycopg sends around them, and pre-pings; and the pre-ping itself: a connection used a moment ago
is handed out without one, an idle one is pinged.

On a loaded server every round trip is a wait for another process (two context switches), and a row lock held
over one is held while the thread waits for the interpreter: a certificate turn made 29 round trips (a ping,
a BEGIN and a ROLLBACK around each of its six reads, the limits in a transaction of their own) before reads
ran in autocommit, limits were charged one statement each, pre-ping was limited to idle connections and the
lockout was taken from the citizen's row the turn reads anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

import storage
from domain.attempts import rate_limits
from tests.conftest import DEMO_DEVICE_TOKENS
from tests.nodes import node_apps

DEMO_PIN = "1357"
AUTHORIZATION = {"Authorization": f"Bearer {DEMO_DEVICE_TOKENS['demo-user-ko']}"}
# Five reads (device token, session, link with its citizen and lockout, certificates, wallet copies) and the
# limit charges (the speaker user and the calling address, in one statement), one round trip each, nothing around them.
CERTIFICATE_TURN_ROUND_TRIPS = 6
CHARGE = "WITH charge (ord,"  # the statement that charges a request's budgets


class RoundTrips:
    """Counts, on one engine, what psycopg sends the server: statements, the BEGIN it sends before a statement
    outside a transaction (unless in autocommit), COMMIT and ROLLBACK when a transaction is open (psycopg sends
    neither otherwise), pings; and connection checkouts (not round trips)."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        self.statements: list[str] = []
        dialect = engine.dialect
        ping, commit, rollback = dialect.do_ping, dialect.do_commit, dialect.do_rollback

        def open_transaction(connection: Any) -> bool:
            dbapi = getattr(connection, "dbapi_connection", connection)
            return dbapi.info.transaction_status != TransactionStatus.IDLE

        def counted_ping(connection: Any) -> bool:
            self.counts["ping"] += 1
            return ping(connection)

        def counted_commit(connection: Any) -> None:
            self.counts["commit"] += open_transaction(connection)
            commit(connection)

        def counted_rollback(connection: Any) -> None:
            self.counts["rollback"] += open_transaction(connection)
            rollback(connection)

        monkeypatch.setattr(dialect, "do_ping", counted_ping)
        monkeypatch.setattr(dialect, "do_commit", counted_commit)
        monkeypatch.setattr(dialect, "do_rollback", counted_rollback)

        def before_execute(conn, _cursor, statement: str, *_args: object) -> None:  # noqa: ANN001
            dbapi = conn.connection.dbapi_connection
            self.counts["begin"] += not dbapi.autocommit and not open_transaction(dbapi)
            self.counts["statement"] += 1
            self.statements.append(" ".join(statement.split()[:3]))

        def checkout(*_args: object) -> None:
            self.counts["checkout"] += 1

        self._engine = engine
        self._listeners = (("before_cursor_execute", before_execute), ("checkout", checkout))
        for name, listener in self._listeners:
            event.listen(engine, name, listener)

    @property
    def round_trips(self) -> int:
        return sum(self.counts[kind] for kind in ("statement", "begin", "commit", "rollback", "ping"))

    def remove(self) -> None:
        for name, listener in self._listeners:
            event.remove(self._engine, name, listener)

    @contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        self.counts.clear()
        self.statements.clear()
        yield self


@pytest.fixture()
def app(postgres, tmp_path: Path):
    with node_apps(tmp_path, postgres.new_database(), count=1) as (only,):
        yield only


@pytest.fixture()
def round_trips(app, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    counter = RoundTrips(app.extensions["minwon"].db.engine, monkeypatch)
    yield counter
    counter.remove()


def converse(app, text_: str, session_id: str | None = None, **headers: str) -> dict:
    body = {"text": text_, **({"session_id": session_id} if session_id else {})}
    response = app.test_client().post("/v1/converse", json=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_certificate_turn_makes_one_round_trip_per_statement_and_no_more_than_it_needs(app, round_trips):
    session_id = converse(app, "내 증명서 상태 알려줘", **AUTHORIZATION)["session_id"]
    converse(app, DEMO_PIN, session_id, **AUTHORIZATION)
    first = converse(app, "내 증명서 상태 알려줘", session_id, **AUTHORIZATION)
    assert first["intent"] == "certificate_status" and first["expects"] != "pin", first

    with round_trips.counting() as counted:
        again = converse(app, "내 증명서 상태 알려줘", session_id, **AUTHORIZATION)
    assert again["speech"] == first["speech"]
    # Reads run in autocommit and the limits are charged one statement at a time: no BEGIN, COMMIT or ROLLBACK;
    # every connection was used a moment ago: no ping. The turn changed nothing in its session: no write.
    assert (counted.counts["begin"], counted.counts["commit"], counted.counts["rollback"], counted.counts["ping"]) == (
        0, 0, 0, 0), counted.counts
    assert counted.round_trips == counted.counts["statement"] <= CERTIFICATE_TURN_ROUND_TRIPS, counted.statements
    assert [s for s in counted.statements if s.startswith(("INSERT", "WITH"))] == [CHARGE]


def test_a_first_faq_turn_makes_two_round_trips_its_limits_and_its_new_session(app, round_trips):
    with round_trips.counting() as counted:
        converse(app, "등본 떼려면 어떻게 해?")
    assert counted.statements == [CHARGE, "INSERT INTO dialog_sessions"]
    # Each is one statement, atomic by itself: no BEGIN, COMMIT or ROLLBACK around either.
    assert (counted.counts["begin"], counted.counts["commit"], counted.counts["rollback"]) == (0, 0, 0)
    assert counted.round_trips == 2


def test_a_turn_with_a_request_id_keeps_its_session_and_reply_in_one_transaction(app, round_trips):
    with round_trips.counting() as counted:
        response = app.test_client().post("/v1/converse", json={"text": "등본 떼려면 어떻게 해?",
                                                                "request_id": "faq-once"})
    assert response.status_code == 200
    writes = [s for s in counted.statements if s.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert "INSERT INTO dialog_sessions" in writes and "INSERT INTO turn_replies" in writes, counted.statements
    assert counted.counts["begin"] >= 1 and counted.counts["commit"] == counted.counts["begin"], counted.counts


def test_a_connection_idle_past_the_threshold_is_pinged_before_use(app, round_trips, monkeypatch):
    db = app.extensions["minwon"].db
    with db.read() as conn:
        conn.execute(text("SELECT 1"))
    with round_trips.counting() as counted, db.read() as conn:
        conn.execute(text("SELECT 1"))
    assert counted.counts["ping"] == 0
    monkeypatch.setattr(storage, "PING_AFTER_IDLE_S", 0.0)
    with round_trips.counting() as counted, db.read() as conn:
        conn.execute(text("SELECT 1"))
    assert counted.counts["ping"] == 1


def test_a_rate_limit_charge_commits_by_itself_so_its_row_is_free_while_the_request_goes_on(app):
    """Another connection can charge (and lock) the same key's row while the first charge's connection is still
    open: the first charge's row lock ended with its statement (with lock_timeout at 10 s, a row still locked by
    an open transaction would make the second charge wait)."""
    services = app.extensions["minwon"]
    limits = services.rate_limits
    with services.db.autocommit() as conn:
        assert limits.budgets["ip"].hit(conn, "192.0.2.7") is None
        with services.db.transaction() as other:
            other.execute(text("SET LOCAL lock_timeout = '200ms'"))
            assert limits.budgets["ip"].hit(other, "192.0.2.7") is None
        digest = limits.budgets["ip"].digest("192.0.2.7")
        assert conn.execute(select(rate_limits.c.tat_us).where(rate_limits.c.key == digest)).scalar() is not None
