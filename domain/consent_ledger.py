"""The My Data consent ledger: one record per (citizen, recipient, data item, purpose), with its history.

A record carries the fields of ISO/IEC TS 27560 (record id, principal as a pseudonym, controller,
recipient, purpose, data items, legal basis, notice, language, jurisdiction, validity, withdrawal
method) and a current status. Every change appends an event (given, withdrawn, expired, renewed;
time, channel, actor) to one ledger-wide, append-only chain: each event holds the hash of the one
before it and a hash over its own facts, its record's identity and the citizen the record belongs to
(as a keyed binding of the citizen id, so a published receipt does not let anyone guess the account id
behind the pseudonym). An edited, removed, reordered event, or a record moved to another citizen, breaks
the chain at that point (`verify_chain`), which also checks each record's principal pseudonym against
the citizen id it names. Each event also gets a consent receipt, a compact JWS (ES256) that the citizen
can fetch and check against the published key.

The chain head row (seq, hash of the last event) carries a JWS over both, signed with the receipt key in
the same transaction as each append. Without it, deleting the last events and rewinding the head row
would leave a shorter chain that checks out; with it, `verify_chain` compares the actual last event with
the signed head, and an append refuses to build on a head that does not match its signature (so a
truncation is not hidden by the next change). What the signed head cannot show is a rollback to an
earlier signed state as a whole (a restored backup): receipts held by citizens are the evidence then.

Every change is one transaction, and its first statement locks the chain head row (SELECT … FOR UPDATE on
PostgreSQL, a row lock every node's connection honours; SQLite serialises writers with BEGIN IMMEDIATE, a
lock on the file that every process honours). So changes take turns across nodes: two writers never append
after the same event, and what a change reads (the record's status, an earlier idempotency key) is what the
change before it left. A change that carries an idempotency key (a retried request) is answered from the
event it made.

Databases of schema version 1 (digests without the citizen, an unsigned head) are re-sealed once by the
storage migration (`reseal_chain`): it checks the chain under the old rules, refuses to seal a broken
one, and recomputes every digest and receipt with the service key. That migration is the one trusted
rewrite of the chain; nothing else ever changes a written event.

Receipts are signed with the JOSE code and key handling the issuer also uses (domain.crypto,
domain.signing_keys) but with keys of their own (the `consent-receipt` purpose): a receipt key is not a
credential issuer key. The keys are in the database, so every node signs with the same key and verifies what
any node signed. Rotated keys stay published, so old receipts keep verifying.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DDL,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    select,
    text,
)

from domain.clock import aware, utc_now
from domain.consent_terms import DEFAULT_PURPOSE, ConsentTerms, load_terms
from domain.crypto import IntegrityFailure, JWSError, parse_compact, sign_compact, signature_is_valid
from domain.signing_keys import RECEIPT_KEYS, IssuerKeyring, import_key_files
from storage import ConnectionScope, Database, MigrationContext, metadata

GENESIS_HASH = "0" * 64
RECEIPT_VERSION = "ISO/IEC TS 27560:2023"
EVENT_KINDS = ("given", "withdrawn", "expired", "renewed")
# The status a record has after each kind of event.
STATUS_AFTER = {"given": "active", "renewed": "active", "withdrawn": "withdrawn", "expired": "expired"}

consent_records = Table(
    "consent_records",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False, index=True),
    # The citizen as the receipts and agencies see them: a keyed hash, not the account id.
    Column("principal_id", String(64), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("data_item", String(64), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("status", String(16), nullable=False),  # active | withdrawn | expired
    Column("since", DateTime(timezone=True), nullable=True),
    Column("valid_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("citizen_id", "recipient", "data_item", "purpose"),
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("record_id", String(64), ForeignKey("consent_records.id"), nullable=False, index=True),
    Column("event", String(16), nullable=False),  # given | withdrawn | expired | renewed
    Column("at", DateTime(timezone=True), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("actor", String(32), nullable=False),  # principal | system | seed
    Column("valid_until", DateTime(timezone=True), nullable=True),
    # sha256(user id, request id) of the request that made the change, so a retry finds it.
    Column("idempotency_key", String(64), nullable=True, unique=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("receipt", Text, nullable=False),
)

consent_chain_head = Table(
    "consent_chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    # Compact JWS over {seq, hash} with the receipt key; NULL only for the genesis head of a new ledger, which
    # is created with the table, before any key exists.
    Column("jws", Text, nullable=True),
)
# The head row exists from the start, so the first two writers lock the same row instead of racing to insert it.
event.listen(consent_chain_head, "after_create",
             DDL(f"INSERT INTO consent_chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')"))


# Where versions before 3 kept the receipt keys: `<data dir>/consent-receipts/issuer-keys/`.
RECEIPT_KEY_FILES = Path("consent-receipts") / "issuer-keys"
RECEIPT_TYP = "JWT"
# Its own `typ`, so a receipt can never stand in for a head checkpoint or the other way round.
HEAD_TYP = "minwon-consent-chain-head+jwt"


class ReceiptError(ValueError):
    """A receipt that does not parse, names an unknown key, or whose signature does not verify."""


class LedgerIntegrityError(IntegrityFailure):
    """The ledger cannot be appended to or upgraded because it fails its integrity check (its head does not
    match its signature, or a chain to be re-sealed is already broken)."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same bytes for the same facts, so a hash can be recomputed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class LedgerKeys:
    """What the ledger derives from the service key: the principal pseudonym, the citizen binding in every
    digest, and the receipt keyring that signs receipts and the chain head. The storage migration uses it
    without a ledger object, on its own connection."""

    def __init__(self, secret_key: bytes, keyring: IssuerKeyring) -> None:
        if not secret_key:
            raise ValueError("the consent ledger needs the service's secret key")
        self._pseudonym_key = hashlib.sha256(b"minwon-consent-principal-v1" + secret_key).digest()
        # A key of its own: the binding is never published, the pseudonym is (in every receipt).
        self._binding_key = hashlib.sha256(b"minwon-consent-citizen-binding-v1" + secret_key).digest()
        self.keyring = keyring

    def principal_id(self, citizen_id: str) -> str:
        return hmac.new(self._pseudonym_key, citizen_id.encode(), hashlib.sha256).hexdigest()[:32]

    def citizen_binding(self, citizen_id: str) -> str:
        """The citizen id as an event digest covers it. Keyed: the digest is in every receipt with all the
        other hashed facts, so a plain id (citizen-0001, …) could be found by trying ids."""
        return hmac.new(self._binding_key, citizen_id.encode(), hashlib.sha256).hexdigest()

    def sign(self, typ: str, claims: dict[str, Any]) -> str:
        signer = self.keyring.active_key()
        return sign_compact({"typ": typ, "kid": signer.kid}, claims, signer.private_key)

    def verify(self, token: str, typ: str) -> dict[str, Any]:
        """The claims of a token of this `typ` whose ES256 signature verifies under one of the receipt keys."""
        try:
            parsed = parse_compact(token)
            key = self.keyring.find(str(parsed.header.get("kid", "")))
            if key is None or parsed.header.get("alg") != "ES256":
                raise ReceiptError("the token names no receipt key")
            if parsed.header.get("typ") != typ:
                raise ReceiptError(f"the token is not a {typ}")
            if not signature_is_valid(parsed, key.private_key.public_key()):
                raise ReceiptError("the token's signature does not verify")
            return parsed.claims()
        except JWSError as exc:
            raise ReceiptError(str(exc)) from exc

    def sign_head(self, seq: int, digest: str, at: datetime) -> str:
        return self.sign(HEAD_TYP, {"seq": seq, "hash": digest, "iat": int(at.timestamp())})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else aware(value).astimezone(UTC).isoformat(timespec="microseconds")


def idempotency_key(user_id: str, request_id: str | None) -> str | None:
    if not request_id:
        return None
    return hashlib.sha256(f"{user_id}\x00{request_id}".encode()).hexdigest()


@dataclass(frozen=True)
class ConsentRecord:
    id: str
    citizen_id: str
    principal_id: str
    recipient: str
    data_item: str
    purpose: str
    language: str
    status: str
    since: datetime | None
    valid_until: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ConsentRecord:
        values = dict(row)
        for name in ("since", "valid_until", "created_at"):
            values[name] = aware(values[name])
        return cls(**values)

    def status_at(self, now: datetime) -> str:
        """active | withdrawn | expired; an active record past its validity is expired even before the
        expiry event is written."""
        if self.status == "active" and self.valid_until is not None and self.valid_until < now:
            return "expired"
        return self.status

    def is_active(self, now: datetime) -> bool:
        return self.status_at(now) == "active"


@dataclass(frozen=True)
class ConsentEvent:
    seq: int
    record_id: str
    event: str
    at: datetime
    channel: str
    actor: str
    valid_until: datetime | None
    prev_hash: str
    hash: str
    receipt: str

    @classmethod
    def from_row(cls, row: Any) -> ConsentEvent:
        values = {k: row[k] for k in cls.__dataclass_fields__}
        values["at"] = aware(values["at"])
        values["valid_until"] = aware(values["valid_until"])
        return cls(**values)


@dataclass(frozen=True)
class ConsentChange:
    changed: bool  # False: the consent was already in the asked state (or there was nothing to withdraw)
    record: ConsentRecord | None
    event: ConsentEvent | None = None
    replayed: bool = False  # the change was made before, by the same request


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    broken_seq: int | None = None
    record_id: str | None = None
    reason: str = ""
    at_head: bool = False  # the head row or its signature is what does not hold

    def describe(self) -> str:
        if self.ok:
            return f"consent chain ok: {self.events} events"
        where = ("the chain head" if self.at_head else
                 f"event {self.broken_seq}" if self.broken_seq is not None else "the chain")
        record = f" (record {self.record_id})" if self.record_id else ""
        return f"consent chain broken at {where}{record}: {self.reason}"


def _event_content(prev_hash: str, seq: int, record: ConsentRecord, kind: str, at: datetime, channel: str,
                   actor: str, valid_until: datetime | None) -> dict[str, Any]:
    return {
        "prev_hash": prev_hash, "seq": seq, "record_id": record.id, "principal_id": record.principal_id,
        "recipient": record.recipient, "data_item": record.data_item, "purpose": record.purpose,
        "event": kind, "at": _iso(at), "channel": channel, "actor": actor, "valid_until": _iso(valid_until),
    }


def event_digest(prev_hash: str, seq: int, record: ConsentRecord, kind: str, at: datetime, channel: str,
                 actor: str, valid_until: datetime | None, *, citizen_binding: str) -> str:
    """The hash an event carries: its own facts, its record's identity, the citizen the record belongs to
    (`LedgerKeys.citizen_binding` of the record's citizen id) and the previous event's hash."""
    content = {**_event_content(prev_hash, seq, record, kind, at, channel, actor, valid_until),
               "citizen": citizen_binding}
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _v1_event_digest(prev_hash: str, seq: int, record: ConsentRecord, kind: str, at: datetime, channel: str,
                     actor: str, valid_until: datetime | None) -> str:
    # Schema version 1's digest (no citizen); only the migration checks a chain with it before re-sealing.
    content = _event_content(prev_hash, seq, record, kind, at, channel, actor, valid_until)
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _digest_for(keys: LedgerKeys, ev: ConsentEvent, prev_hash: str, record: ConsentRecord, v1: bool) -> str:
    facts = (prev_hash, ev.seq, record, ev.event, ev.at, ev.channel, ev.actor, ev.valid_until)
    if v1:
        return _v1_event_digest(*facts)
    return event_digest(*facts, citizen_binding=keys.citizen_binding(record.citizen_id))


def check_chain(conn: Connection, keys: LedgerKeys, *, v1: bool = False) -> ChainReport:
    """Walks every event in order; the first one whose links, hash, principal or receipt do not hold is
    reported, then the head against its signature, then each record's status against its history. With
    `v1`, the rules of schema version 1 (no citizen in the digest, an unsigned head)."""
    events = [ConsentEvent.from_row(r) for r in conn.execute(
        select(consent_events).order_by(consent_events.c.seq)).mappings().all()]
    records = {r["id"]: ConsentRecord.from_row(r) for r in conn.execute(select(consent_records)).mappings().all()}
    head = conn.execute(select(consent_chain_head).where(consent_chain_head.c.id == 1)).mappings().first()
    prev_hash = GENESIS_HASH
    last_status: dict[str, str] = {}
    principal_ok: dict[str, bool] = {}
    for expected_seq, ev in enumerate(events, start=1):
        def broken(reason: str, ev: ConsentEvent = ev) -> ChainReport:
            return ChainReport(False, len(events), ev.seq, ev.record_id, reason)

        if ev.seq != expected_seq:
            return broken(f"event {expected_seq} is missing")
        if ev.prev_hash != prev_hash:
            return broken("it does not carry the previous event's hash")
        record = records.get(ev.record_id)
        if record is None:
            return broken("its consent record is missing")
        if ev.event not in EVENT_KINDS:
            return broken("unknown event kind")
        if record.id not in principal_ok:
            principal_ok[record.id] = hmac.compare_digest(record.principal_id, keys.principal_id(record.citizen_id))
        if not principal_ok[record.id]:
            return broken("its record's principal is not the citizen the record names (moved to another citizen?)")
        if _digest_for(keys, ev, prev_hash, record, v1) != ev.hash:
            return broken("its content or its record's identity was changed")
        try:
            claims = keys.verify(ev.receipt, RECEIPT_TYP)
        except ReceiptError:
            return broken("its receipt's signature does not verify")
        if claims.get("event", {}).get("hash") != ev.hash or claims.get("record_id") != ev.record_id:
            return broken("its receipt belongs to another event")
        prev_hash = ev.hash
        last_status[ev.record_id] = STATUS_AFTER[ev.event]
    count = len(events)
    if head is None:
        return ChainReport(False, count, None, None, "it is missing", at_head=True)
    if not v1:
        problem = _signed_head_problem(keys, head, count, prev_hash)
        if problem is not None:
            return problem
    if head["seq"] != count or head["hash"] != prev_hash:
        return ChainReport(False, count, count + 1, None, "events are missing after the last one")
    for record in records.values():
        if last_status.get(record.id) != record.status:
            last = max((e.seq for e in events if e.record_id == record.id), default=None)
            return ChainReport(False, count, last, record.id, "the record's status disagrees with its history")
    return ChainReport(True, count)


def _signed_head_problem(keys: LedgerKeys, head: Any, count: int, last_hash: str) -> ChainReport | None:
    """The actual last event (`count`, `last_hash`) against the signed head; None when they agree."""
    if head["jws"] is None:
        # Only a new, empty ledger has an unsigned head (the genesis row is made with the table, before any key).
        if head["seq"] == 0 and head["hash"] == GENESIS_HASH and count == 0:
            return None
        return ChainReport(False, count, None, None, "it is not signed", at_head=True)
    try:
        claims = keys.verify(head["jws"], HEAD_TYP)
    except ReceiptError:
        return ChainReport(False, count, None, None, "its signature does not verify", at_head=True)
    signed_seq, signed_hash = claims.get("seq"), claims.get("hash")
    if not isinstance(signed_seq, int) or signed_seq > count:
        return ChainReport(False, count, count + 1, None,
                           f"events are missing after the last one (the signed head is at event {signed_seq})")
    if signed_seq < count:
        return ChainReport(False, count, signed_seq + 1, None,
                           f"events after event {signed_seq} are not covered by the signed head")
    if signed_hash != last_hash:
        return ChainReport(False, count, count, None, "the last event is not the one the signed head names")
    if head["seq"] != signed_seq or head["hash"] != signed_hash:
        return ChainReport(False, count, None, None, "it was changed after it was signed", at_head=True)
    return None


def migrate_v2(conn: Connection, context: MigrationContext) -> None:
    """Schema version 1 → 2 for the ledger: the head gets its signature column, then the chain is re-sealed."""
    conn.execute(text("ALTER TABLE consent_chain_head ADD COLUMN jws TEXT"))
    reseal_chain(conn, context.secret_key, context.data_dir)


def import_receipt_key_files(conn: Connection, context: MigrationContext) -> int:
    """The receipt keys an older version kept in the data directory, into the database (see
    `domain.signing_keys.import_key_files`)."""
    return import_key_files(conn, context.data_dir / RECEIPT_KEY_FILES, RECEIPT_KEYS, context.secret_key)


def reseal_chain(conn: Connection, secret_key: bytes, data_dir: Path) -> int:
    """Schema version 1 → 2: every digest recomputed to cover the citizen, every receipt re-signed with it, and
    the head signed. The one trusted rewrite of the chain, run by the storage migration with the service key;
    a chain that already fails the old rules is not re-sealed (that would launder the tampering) and the
    upgrade stops. Returns the number of events."""
    # The receipts to check were signed with the key files of the data directory: those come into the database
    # first (the version-3 step, done here already because this step needs them), then sign the new seals.
    import_receipt_key_files(conn, MigrationContext(secret_key, data_dir))
    keys = LedgerKeys(secret_key, IssuerKeyring(ConnectionScope(conn), RECEIPT_KEYS, secret_key, cache_ttl_s=0))
    report = check_chain(conn, keys, v1=True)
    if not report.ok:
        raise LedgerIntegrityError(f"the consent ledger is not re-sealed: under the rules it was written with, "
                                   f"{report.describe()}; restore it from a backup, then upgrade")
    records = {r["id"]: ConsentRecord.from_row(r) for r in conn.execute(select(consent_records)).mappings().all()}
    events = [ConsentEvent.from_row(r) for r in conn.execute(
        select(consent_events).order_by(consent_events.c.seq)).mappings().all()]
    prev_hash = GENESIS_HASH
    for ev in events:
        digest = _digest_for(keys, ev, prev_hash, records[ev.record_id], v1=False)
        # The receipt keeps every claim it was issued with; only the links change, re-signed with today's key.
        claims = keys.verify(ev.receipt, RECEIPT_TYP)
        claims["event"] = {**claims["event"], "prev_hash": prev_hash, "hash": digest}
        conn.execute(consent_events.update().where(consent_events.c.seq == ev.seq).values(
            prev_hash=prev_hash, hash=digest, receipt=keys.sign(RECEIPT_TYP, claims)))
        prev_hash = digest
    conn.execute(consent_chain_head.update().where(consent_chain_head.c.id == 1).values(
        seq=len(events), hash=prev_hash, jws=keys.sign_head(len(events), prev_hash, utc_now())))
    return len(events)


class ConsentLedger:
    def __init__(self, db: Database, secret_key: bytes, terms: ConsentTerms | None = None) -> None:
        self.db = db
        self.terms = terms or load_terms()
        self.keyring = IssuerKeyring(db, RECEIPT_KEYS, secret_key)
        self.keys = LedgerKeys(secret_key, self.keyring)

    # -- identities and keys ---------------------------------------------------------------------------

    def principal_id(self, citizen_id: str) -> str:
        return self.keys.principal_id(citizen_id)

    def jwks(self) -> dict[str, Any]:
        """The keys that verify consent receipts, the signing one first."""
        return self.keyring.jwks()

    # -- reading ---------------------------------------------------------------------------------------

    def records(self, citizen_id: str) -> list[ConsentRecord]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(consent_records).where(consent_records.c.citizen_id == citizen_id)
                .order_by(consent_records.c.created_at, consent_records.c.id)
            ).mappings().all()
        return [ConsentRecord.from_row(row) for row in rows]

    def record(self, citizen_id: str, record_id: str) -> ConsentRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(consent_records).where(
                consent_records.c.id == record_id, consent_records.c.citizen_id == citizen_id)).mappings().first()
        return ConsentRecord.from_row(row) if row else None

    def events(self, record_id: str) -> list[ConsentEvent]:
        with self.db.read() as conn:
            rows = conn.execute(select(consent_events).where(consent_events.c.record_id == record_id)
                                .order_by(consent_events.c.seq)).mappings().all()
        return [ConsentEvent.from_row(row) for row in rows]

    def active_record(self, conn: Connection, citizen_id: str, recipient: str, data_item: str, purpose: str,
                      now: datetime) -> ConsentRecord | None:
        """The record that allows this release right now, inside the caller's transaction, or None."""
        row = conn.execute(select(consent_records).where(self._key(citizen_id, recipient, data_item, purpose))
                           ).mappings().first()
        record = ConsentRecord.from_row(row) if row else None
        return record if record is not None and record.is_active(now) else None

    # -- changing --------------------------------------------------------------------------------------

    def set_consent(
        self, citizen_id: str, recipient: str, data_item: str, purpose: str, active: bool, channel: str, actor: str,
        valid_until: datetime | None = None, *, language: str = "ko-KR", idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> ConsentChange:
        """Gives (or renews after expiry) or withdraws a consent, in one transaction.

        Asking for the state a consent is already in changes nothing (`changed` is False). A change with an
        `idempotency_key` that was already used returns that first change (`replayed`) and writes nothing.
        """
        if recipient not in self.terms.recipients or data_item not in self.terms.data_items:
            raise ValueError("unknown recipient or data item")
        terms = self.terms.purpose(purpose)
        now = now or utc_now()
        self.keyring.active_key()  # made (by the first node to need it) outside the ledger's transaction
        with self.db.transaction() as conn:
            self._lock_chain(conn)
            if idempotency_key:
                earlier = conn.execute(select(consent_events).where(
                    consent_events.c.idempotency_key == idempotency_key)).mappings().first()
                if earlier is not None:
                    return ConsentChange(True, self._record_by_id(conn, earlier["record_id"]),
                                         ConsentEvent.from_row(earlier), replayed=True)
            row = conn.execute(select(consent_records).where(self._key(citizen_id, recipient, data_item, purpose))
                               ).mappings().first()
            record = ConsentRecord.from_row(row) if row else None
            if record is not None and record.status == "active" and record.status_at(now) == "expired":
                record, _ = self._append(conn, record, "expired", now, "system", "system", record.valid_until)
            if active:
                if record is not None and record.status == "active":
                    return ConsentChange(False, record)
                kind = "renewed" if record is not None and record.status == "expired" else "given"
                until = valid_until or now + terms.validity
                if record is None:
                    record = ConsentRecord(
                        id="consent-" + secrets.token_hex(8), citizen_id=citizen_id,
                        principal_id=self.principal_id(citizen_id), recipient=recipient, data_item=data_item,
                        purpose=purpose, language=language, status="active", since=now, valid_until=until,
                        created_at=now,
                    )
                    conn.execute(consent_records.insert().values(**record.__dict__))
            else:
                if record is None or record.status != "active":
                    return ConsentChange(False, record)
                kind, until = "withdrawn", record.valid_until
            record, appended = self._append(conn, record, kind, now, channel, actor, until, idempotency_key)
            return ConsentChange(True, record, appended)

    def expire_due(self, citizen_id: str | None = None, now: datetime | None = None) -> int:
        """Writes the `expired` event for every active record past its validity; returns how many."""
        now = now or utc_now()
        self.keyring.active_key()
        with self.db.transaction() as conn:
            self._lock_chain(conn)
            query = select(consent_records).where(consent_records.c.status == "active",
                                                  consent_records.c.valid_until < now)
            if citizen_id is not None:
                query = query.where(consent_records.c.citizen_id == citizen_id)
            due = [ConsentRecord.from_row(row) for row in conn.execute(query).mappings().all()]
            for record in due:
                self._append(conn, record, "expired", now, "system", "system", record.valid_until)
        return len(due)

    def _append(self, conn: Connection, record: ConsentRecord, kind: str, at: datetime, channel: str, actor: str,
                valid_until: datetime | None, key: str | None = None) -> tuple[ConsentRecord, ConsentEvent]:
        """Appends one event to the chain and moves the record to the status that event leaves it in (the caller
        holds the chain lock, `_lock_chain`)."""
        head = self._lock_chain(conn)
        self._check_head(conn, head)
        seq = head["seq"] + 1
        status = STATUS_AFTER[kind]
        since = at if kind in ("given", "renewed") else record.since
        record = ConsentRecord(**{**record.__dict__, "status": status, "since": since, "valid_until": valid_until})
        digest = event_digest(head["hash"], seq, record, kind, at, channel, actor, valid_until,
                              citizen_binding=self.keys.citizen_binding(record.citizen_id))
        receipt = self.keys.sign(RECEIPT_TYP,
                                 self._receipt_claims(record, seq, kind, at, channel, actor, head["hash"], digest))
        conn.execute(consent_events.insert().values(
            seq=seq, record_id=record.id, event=kind, at=at, channel=channel, actor=actor, valid_until=valid_until,
            idempotency_key=key, prev_hash=head["hash"], hash=digest, receipt=receipt))
        # The new head is signed in the same transaction, under the same lock, as the event it names.
        conn.execute(consent_chain_head.update().where(consent_chain_head.c.id == 1).values(
            seq=seq, hash=digest, jws=self.keys.sign_head(seq, digest, at)))
        conn.execute(consent_records.update().where(consent_records.c.id == record.id).values(
            status=status, since=since, valid_until=valid_until))
        return record, ConsentEvent(seq, record.id, kind, at, channel, actor, valid_until, head["hash"], digest,
                                    receipt)

    # -- receipts --------------------------------------------------------------------------------------

    def _receipt_claims(self, record: ConsentRecord, seq: int, kind: str, at: datetime, channel: str, actor: str,
                        prev_hash: str, digest: str) -> dict[str, Any]:
        purpose = self.terms.purpose(record.purpose)
        controller = self.terms.controller
        locale = record.language
        return {
            "iss": controller["id"], "iat": int(at.timestamp()), "jti": f"{record.id}#{seq}",
            "version": RECEIPT_VERSION,
            "record_id": record.id, "principal_id": record.principal_id,
            "controller": {"id": controller["id"], "name": self.terms.name(controller, locale),
                           "contact": controller.get("contact", "")},
            "recipient": {"id": record.recipient, "name": self.terms.recipient_name(record.recipient, locale)},
            "purpose": {"id": purpose.id, "description": self.terms.name(purpose.names, locale)},
            "data_items": [{"id": record.data_item, "name": self.terms.data_item_name(record.data_item, locale)}],
            "legal_basis": purpose.legal_basis, "notice_url": purpose.notice_url, "language": locale,
            "jurisdiction": self.terms.jurisdiction,
            "validity": {"from": _iso(record.since), "until": _iso(record.valid_until)},
            "withdrawal_method": self.terms.name(self.terms.withdrawal_method, locale),
            "event": {"seq": seq, "type": kind, "at": _iso(at), "channel": channel, "actor": actor,
                      "prev_hash": prev_hash, "hash": digest},
        }

    def read_receipt(self, receipt: str) -> dict[str, Any]:
        """The claims of a receipt whose ES256 signature verifies under one of the receipt keys."""
        return self.keys.verify(receipt, RECEIPT_TYP)

    def describe(self, record: ConsentRecord, now: datetime | None = None) -> dict[str, Any]:
        """The record as the citizen's app shows it: the TS 27560 fields, in the record's language."""
        purpose = self.terms.purpose(record.purpose)
        locale = record.language
        return {
            "record_id": record.id, "principal_id": record.principal_id,
            "controller": {"id": self.terms.controller["id"], "name": self.terms.name(self.terms.controller, locale)},
            "recipient": {"id": record.recipient, "name": self.terms.recipient_name(record.recipient, locale)},
            "purpose": {"id": purpose.id, "description": self.terms.name(purpose.names, locale)},
            "data_items": [{"id": record.data_item, "name": self.terms.data_item_name(record.data_item, locale)}],
            "legal_basis": purpose.legal_basis, "notice_url": purpose.notice_url, "language": locale,
            "jurisdiction": self.terms.jurisdiction, "status": record.status_at(now or utc_now()),
            "validity": {"from": _iso(record.since), "until": _iso(record.valid_until)},
            "withdrawal_method": self.terms.name(self.terms.withdrawal_method, locale),
        }

    # -- verification ----------------------------------------------------------------------------------

    def verify_chain(self) -> ChainReport:
        """Walks every event in order; the first one whose links, hash, principal or receipt do not hold is
        reported, then the last event against the signed head."""
        with self.db.read() as conn:
            if conn.dialect.name == "postgresql":
                # Events, records and head from one snapshot, so an append committed meanwhile is not taken
                # for a gap (SQLite's read transaction is a snapshot already).
                conn.execution_options(isolation_level="REPEATABLE READ")
            return check_chain(conn, self.keys)

    # -- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _lock_chain(conn: Connection) -> Any:
        """The chain head row, locked until the transaction ends: the first statement of every change, so that
        changes from every node take turns (FOR UPDATE; on SQLite the transaction's BEGIN IMMEDIATE already
        holds the database's one writer lock). Taken again by each append in the same transaction, it returns
        the head as the previous append left it."""
        return conn.execute(select(consent_chain_head).where(consent_chain_head.c.id == 1).with_for_update()
                            ).mappings().one()

    def _check_head(self, conn: Connection, head: Any) -> None:
        """Refuses to append after a head that does not match its signature: building on a rewound head
        would hide the events removed after it behind a valid new signature."""
        if head["jws"] is None:
            empty = conn.execute(select(consent_events.c.seq).limit(1)).first() is None
            if head["seq"] == 0 and head["hash"] == GENESIS_HASH and empty:
                return
            raise LedgerIntegrityError("the consent chain head is not signed; run `app.py verify-consent-chain`")
        try:
            claims = self.keys.verify(head["jws"], HEAD_TYP)
        except ReceiptError as exc:
            raise LedgerIntegrityError("the consent chain head's signature does not verify") from exc
        if claims.get("seq") != head["seq"] or claims.get("hash") != head["hash"]:
            raise LedgerIntegrityError("the consent chain head was changed after it was signed; "
                                       "run `app.py verify-consent-chain`")

    @staticmethod
    def _key(citizen_id: str, recipient: str, data_item: str, purpose: str) -> Any:
        return ((consent_records.c.citizen_id == citizen_id) & (consent_records.c.recipient == recipient)
                & (consent_records.c.data_item == data_item) & (consent_records.c.purpose == purpose))

    @staticmethod
    def _record_by_id(conn: Connection, record_id: str) -> ConsentRecord:
        return ConsentRecord.from_row(conn.execute(select(consent_records).where(
            consent_records.c.id == record_id)).mappings().one())


__all__ = ["DEFAULT_PURPOSE", "ChainReport", "ConsentChange", "ConsentEvent", "ConsentLedger", "ConsentRecord",
           "LedgerIntegrityError", "LedgerKeys", "ReceiptError", "check_chain", "idempotency_key", "reseal_chain"]
