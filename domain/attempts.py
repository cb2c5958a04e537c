"""Rate limits and attempt budgets, counted in the database so that a limit holds across worker processes and
nodes: requests per speaker user, device and calling address, device registrations per address, token-endpoint
requests per client, and link-code guesses per user, per address and in total.

One algorithm for all of them, GCRA (the generic cell rate algorithm): a budget of `limit` events per
`window_s` with a `burst` (default: `limit`) is the token bucket the service used to keep in memory per process
(capacity `burst`, refilled at `limit` per window), stored as one instant per key, its "theoretical arrival
time" (TAT). An event moves the TAT to max(TAT, now) + interval (interval = window / limit) and is allowed while
the TAT then stays within burst × interval of now. So `limit` events at once are allowed and the next one
after a further interval, `limit` per window in the long run — the same numbers as the bucket, with no window
edge at which twice the limit gets through (as a fixed window would allow).

Why one instant rather than a counter: the whole check-and-charge is one UPSERT (`INSERT … ON CONFLICT DO
UPDATE … WHERE … RETURNING`), atomic on SQLite and on PostgreSQL however many nodes count the same key; a row
whose TAT has passed means exactly what a missing row means (a full bucket), so `purge_expired` deletes those
and the table only holds keys that were busy within their last window.

Keys are stored as keyed digests of (budget name, key): the table never holds a user id, an address or a
token, and a copy of it does not tell whose budget a row is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, String, Table, TextClause, bindparam, case, delete, select, text

from domain.clock import Clock, utc_now
from domain.crypto import keyed_hash
from storage import Database, insert_or_update, metadata

rate_limits = Table(
    "rate_limits",
    metadata,
    # keyed_hash of (budget name, key): never the user id, address or token itself.
    Column("key", String(64), primary_key=True),
    # The theoretical arrival time in microseconds since the Unix epoch; at or before now = a full budget.
    Column("tat_us", BigInteger, nullable=False),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


class RateLimit:
    """One budget: `limit` events per `window_s` seconds, `burst` of them at once (default: `limit`).

    `hit`, `count` and `exhausted` run in the caller's transaction (the token endpoint and link codes count
    in the transaction that checks the guess); `RequestLimits` charges a request's HTTP budgets together, in one
    statement that commits by itself. `name` keeps budgets with the same keys apart (a user's requests and the same user's link-code guesses)."""

    def __init__(self, name: str, limit: int, window_s: float, secret_key: bytes, *, burst: int | None = None,
                 clock: Clock = utc_now) -> None:
        if limit < 1 or window_s <= 0 or (burst is not None and burst < 1):
            raise ValueError("a budget needs a limit and a burst of at least 1 and a positive window")
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self.burst = burst or limit
        self.clock = clock
        self._secret = secret_key
        self.interval_us = max(1, round(window_s * 1_000_000 / limit))
        # How far ahead of now the TAT may be before an event is refused: burst - 1 intervals.
        self.tolerance_us = (self.burst - 1) * self.interval_us

    def digest(self, key: str) -> str:
        return keyed_hash(self._secret, "rate-limit", f"{self.name}\x00{key}")

    def hit(self, conn: Connection, key: str) -> int | None:
        """Counts one event for `key` if the budget allows it: None, else the whole seconds until it would
        (nothing is counted then, so a client held back does not push its own budget further away)."""
        now = _micros(self.clock())
        digest = self.digest(key)
        if conn.execute(_statements(conn).charge, self._parameters(digest, now)).first() is not None:
            return None
        return self.wait(conn, digest, now)

    def wait(self, conn: Connection, digest: str, now: int) -> int:
        """The whole seconds (at least 1) until the key of `digest` may have its next event, `now` being the
        instant (in microseconds) an event was just refused at."""
        # In a transaction the row is still locked (ON CONFLICT DO UPDATE on PostgreSQL, the writer lock on
        # SQLite), so this is the instant the refusal was based on; on an autocommit connection (`RequestLimits`)
        # it may be a moment newer, which can only make the wait a little longer, and the row may even be gone
        # (purged once its instant passed), which means the budget is back: the shortest wait.
        tat = conn.execute(_statements(conn).read, {"key": digest}).scalar()
        if tat is None:
            return 1
        return max(1, math.ceil((tat - self.tolerance_us - now) / 1_000_000))

    def count(self, conn: Connection, key: str) -> None:
        """Counts one event for `key` whether or not the budget allows it (a failed guess always counts)."""
        conn.execute(_statements(conn).count, self._parameters(self.digest(key), _micros(self.clock())))

    def exhausted(self, conn: Connection, key: str) -> bool:
        """Whether the next event for `key` would be refused. Counts nothing, but locks the key's row until the
        transaction ends (making it first, as a full budget, if there is none), so that this check and a `count`
        after it are not interleaved with another node's. A row that only exists from the count on could not be
        locked here, and two transactions checking several budgets would then lock them in different orders
        (one at its check, the other at its count) and deadlock."""
        statements = _statements(conn)
        digest = self.digest(key)
        conn.execute(statements.make, {"key": digest})
        tat = conn.execute(statements.lock, {"key": digest}).scalar_one()
        return tat - _micros(self.clock()) > self.tolerance_us

    def _parameters(self, digest: str, now: int) -> dict[str, object]:
        return {"key": digest, "now": now, "first": now + self.interval_us, "interval": self.interval_us,
                "allowance": self.burst * self.interval_us}


@dataclass(frozen=True)
class _Statements:
    """The limiter's statements for one dialect, built once (building a statement costs more than running it)."""

    charge: Any  # count the event if the budget allows it, returning the new TAT; nothing when refused
    count: Any  # count the event whatever the budget says
    make: Any  # a row for the key (a full budget) unless it has one
    read: Any
    lock: Any


_BUILT: dict[str, _Statements] = {}


def _statements(conn: Connection) -> _Statements:
    built = _BUILT.get(conn.dialect.name)
    if built is not None:
        return built
    now = bindparam("now", type_=BigInteger)
    # max(TAT, now) + interval, in SQL: the stored TAT is the row's, whoever wrote it last.
    later = case((rate_limits.c.tat_us > now, rate_limits.c.tat_us), else_=now) + bindparam("interval", type_=BigInteger)
    first = insert_or_update(conn, rate_limits).values(key=bindparam("key"), tat_us=bindparam("first", type_=BigInteger))
    by_key = rate_limits.c.key == bindparam("key")
    built = _Statements(
        charge=first.on_conflict_do_update(
            index_elements=[rate_limits.c.key], set_={"tat_us": later},
            where=later - now <= bindparam("allowance", type_=BigInteger)).returning(rate_limits.c.tat_us),
        count=first.on_conflict_do_update(index_elements=[rate_limits.c.key], set_={"tat_us": later}),
        make=insert_or_update(conn, rate_limits).values(key=bindparam("key"), tat_us=0).on_conflict_do_nothing(),
        read=select(rate_limits.c.tat_us).where(by_key),
        lock=select(rate_limits.c.tat_us).where(by_key).with_for_update(),
    )
    _BUILT[conn.dialect.name] = built
    return built


_CHARGE_ALL: dict[tuple[str, int], TextClause] = {}


def _charge_all(dialect: str, count: int) -> TextClause:
    """One statement charging `count` budgets (parameters key<i>, now<i>, step<i>, allowance<i>, in the request's
    order), on SQLite or PostgreSQL; it returns the keys it counted an event for.

    Which budgets it charges: those before the first one whose stored instant refuses the event (the `refused`
    step), each with `RateLimit.hit`'s UPSERT, whose WHERE checks the budget once more on the row as it is when
    written. On PostgreSQL the `locked` step first locks the rows that exist, in key order, so the refusal is
    decided on the rows as the last writer left them and no other node's charge comes between that decision and
    the writes (SQLite's one writer lock does the same); a key without a row is a full budget, which another
    node's first charge of the same instant can only leave with one event less. Rows are written in key order
    too, so two requests that share keys lock them in the same order."""
    built = _CHARGE_ALL.get((dialect, count))
    if built is not None:
        return built

    def per_key(name: str) -> str:
        # The conflicting row's own value of `name`: ON CONFLICT's SET and WHERE see only the proposed row
        # (`excluded`), which carries the key; the rest comes by the key.
        whens = " ".join(f"WHEN :key{i} THEN CAST(:{name}{i} AS BIGINT)" for i in range(count))
        return f"(CASE excluded.key {whens} END)"

    now, allowance = per_key("now"), per_key("allowance")
    # max(TAT, now) + interval; the proposed row's TAT is now + interval, the interval of its budget.
    later = f"(CASE WHEN rate_limits.tat_us > {now} THEN rate_limits.tat_us ELSE {now} END + (excluded.tat_us - {now}))"
    charges = ", ".join(f"({i}, CAST(:key{i} AS VARCHAR(64)), CAST(:now{i} AS BIGINT), CAST(:step{i} AS BIGINT),"
                        f" CAST(:allowance{i} AS BIGINT))" for i in range(count))
    lock = " ORDER BY rate_limits.key FOR UPDATE OF rate_limits" if dialect == "postgresql" else ""
    built = text(
        f"WITH charge (ord, key, now_us, step, allowance) AS (VALUES {charges}),"
        " locked AS (SELECT charge.ord, charge.now_us, charge.step, charge.allowance, rate_limits.tat_us"
        f"  FROM charge JOIN rate_limits ON rate_limits.key = charge.key{lock}),"
        # max(TAT, now) + interval - now > burst × interval; a TAT at or before now never refuses (burst >= 1).
        " refused (ord) AS (SELECT MIN(ord) FROM locked WHERE tat_us - now_us + step > allowance)"
        " INSERT INTO rate_limits (key, tat_us)"
        " SELECT charge.key, charge.now_us + charge.step FROM charge"
        f"  WHERE charge.ord < COALESCE((SELECT refused.ord FROM refused), {count}) ORDER BY charge.key"
        f" ON CONFLICT (key) DO UPDATE SET tat_us = {later} WHERE {later} - {now} <= {allowance}"
        " RETURNING key")
    _CHARGE_ALL[(dialect, count)] = built
    return built


def purge_expired(conn: Connection, now: datetime) -> int:
    """Deletes every key whose budget is full again (its TAT has passed): such a row means what no row means."""
    return conn.execute(delete(rate_limits).where(rate_limits.c.tat_us <= _micros(now))).rowcount or 0


class RequestLimits:
    """The HTTP layer's budgets by kind ("user", "device", "ip", "register"), charged before the request does its
    work and never inside a caller's transaction, so a refused request has written nothing else and a request's
    own transaction does not hold the counter rows while it works.

    All of a request's charges are one statement (`_charge_all`), which commits by itself (`Database.autocommit`):
    one round trip whatever the number of budgets, and on PostgreSQL the row of a busy key (every request from one
    address charges the same one) is locked only while that statement runs. The numbers are those of charging the
    budgets one `RateLimit.hit` after another: each budget's event is counted on its row as the last writer left
    it, on whatever node, and the budgets from the first refusing one on are not charged."""

    def __init__(self, db: Database, budgets: Mapping[str, RateLimit], clock: Clock = utc_now) -> None:
        self.db = db
        self.budgets = dict(budgets)
        self.clock = clock

    def retry_after(self, charges: Iterable[tuple[str, str]]) -> int:
        """Charges each (kind, key) in turn: 0 when every budget allowed the request, else the seconds to wait
        for the first that did not (the budgets before it were charged, as the request was made; those after it
        were not)."""
        charged = [(self.budgets[kind], key) for kind, key in charges]
        if not charged:
            return 0
        rows = [(budget, budget.digest(key), _micros(budget.clock())) for budget, key in charged]
        digests = [digest for _budget, digest, _now in rows]
        if len(set(digests)) != len(digests):
            # One statement cannot charge a row twice (PostgreSQL refuses it), and no caller charges a budget twice.
            raise ValueError("a request charges each budget at most once")
        parameters: dict[str, object] = {}
        for i, (budget, digest, now) in enumerate(rows):
            parameters |= {f"key{i}": digest, f"now{i}": now, f"step{i}": budget.interval_us,
                           f"allowance{i}": budget.burst * budget.interval_us}
        with self.db.autocommit() as conn:
            counted = set(conn.execute(_charge_all(conn.dialect.name, len(rows)), parameters).scalars())
            for budget, digest, now in rows:
                if digest not in counted:
                    return budget.wait(conn, digest, now)
        return 0

    def purge(self) -> int:
        """Deletes the rows of every budget that is full again (of any budget: they share the table); returns
        how many."""
        with self.db.transaction() as conn:
            return purge_expired(conn, self.clock())
