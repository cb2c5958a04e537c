"""The My Data consent ledger: one record per (citizen, recipient, data item, purpose), with its history.

A record carries the fields of ISO/IEC TS 27560 (record id, principal as a pseudonym, controller,
recipient, purpose, data items, legal basis, notice, language, jurisdiction, validity, withdrawal
method) and a current status. Every change appends an event (given, withdrawn, expired, renewed;
time, channel, actor) to one ledger-wide, append-only chain: each event holds the hash of the one
before it and a hash over its own facts and its record's identity, so an edited, removed or reordered
event breaks the chain at that point (`verify_chain`). Each event also gets a consent receipt, a
compact JWS (ES256) that the citizen can fetch and check against the published key.

Every change is one transaction. The chain head row is locked first (FOR UPDATE on PostgreSQL; SQLite
already serialises writers with BEGIN IMMEDIATE), so two writers never append after the same event.
A change that carries an idempotency key (a retried request) is answered from the event it made.

Receipts are signed with the JOSE code and key handling the issuer also uses (domain.crypto,
domain.signing_keys) but with keys of their own, in `<data dir>/consent-receipts/`: a receipt key is not a
credential issuer key. Rotated keys stay published, so old receipts keep verifying.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
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
)

from domain.clock import aware, utc_now
from domain.consent_terms import DEFAULT_PURPOSE, ConsentTerms, load_terms
from domain.crypto import JWSError, parse_compact, sign_compact, signature_is_valid
from domain.signing_keys import IssuerKeyring
from storage import Database, metadata

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
)
# The head row exists from the start, so the first two writers lock the same row instead of racing to insert it.
event.listen(consent_chain_head, "after_create",
             DDL(f"INSERT INTO consent_chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')"))


RECEIPT_KEYS_DIR = "consent-receipts"


class ReceiptError(ValueError):
    """A receipt that does not parse, names an unknown key, or whose signature does not verify."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same bytes for the same facts, so a hash can be recomputed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@cache
def _receipt_keyring(data_dir: Path, secret_key: bytes) -> IssuerKeyring:
    # One keyring per directory and process: it re-reads its directory only when a key is added.
    return IssuerKeyring(data_dir / RECEIPT_KEYS_DIR, secret_key)


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

    def describe(self) -> str:
        if self.ok:
            return f"consent chain ok: {self.events} events"
        where = f"event {self.broken_seq}" if self.broken_seq is not None else "the chain"
        record = f" (record {self.record_id})" if self.record_id else ""
        return f"consent chain broken at {where}{record}: {self.reason}"


def event_digest(prev_hash: str, seq: int, record: ConsentRecord, kind: str, at: datetime, channel: str,
                 actor: str, valid_until: datetime | None) -> str:
    """The hash an event carries: its own facts, its record's identity and the previous event's hash."""
    content = {
        "prev_hash": prev_hash, "seq": seq, "record_id": record.id, "principal_id": record.principal_id,
        "recipient": record.recipient, "data_item": record.data_item, "purpose": record.purpose,
        "event": kind, "at": _iso(at), "channel": channel, "actor": actor, "valid_until": _iso(valid_until),
    }
    return hashlib.sha256(canonical_json(content)).hexdigest()


class ConsentLedger:
    def __init__(self, db: Database, secret_key: bytes, data_dir: Path, terms: ConsentTerms | None = None) -> None:
        if not secret_key:
            raise ValueError("the consent ledger needs the service's secret key")
        self.db = db
        self.terms = terms or load_terms()
        self._pseudonym_key = hashlib.sha256(b"minwon-consent-principal-v1" + secret_key).digest()
        self.keyring = _receipt_keyring(Path(data_dir).resolve(), secret_key)

    # -- identities and keys ---------------------------------------------------------------------------

    def principal_id(self, citizen_id: str) -> str:
        return hmac.new(self._pseudonym_key, citizen_id.encode(), hashlib.sha256).hexdigest()[:32]

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
        with self.db.transaction() as conn:
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
        with self.db.transaction() as conn:
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
        """Appends one event to the chain and moves the record to the status that event leaves it in."""
        head = conn.execute(select(consent_chain_head).where(consent_chain_head.c.id == 1).with_for_update()
                            ).mappings().one()
        seq = head["seq"] + 1
        status = STATUS_AFTER[kind]
        since = at if kind in ("given", "renewed") else record.since
        record = ConsentRecord(**{**record.__dict__, "status": status, "since": since, "valid_until": valid_until})
        digest = event_digest(head["hash"], seq, record, kind, at, channel, actor, valid_until)
        signer = self.keyring.active_key()
        receipt = sign_compact({"typ": "JWT", "kid": signer.kid},
                               self._receipt_claims(record, seq, kind, at, channel, actor, head["hash"], digest),
                               signer.private_key)
        conn.execute(consent_events.insert().values(
            seq=seq, record_id=record.id, event=kind, at=at, channel=channel, actor=actor, valid_until=valid_until,
            idempotency_key=key, prev_hash=head["hash"], hash=digest, receipt=receipt))
        conn.execute(consent_chain_head.update().where(consent_chain_head.c.id == 1).values(seq=seq, hash=digest))
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
        try:
            token = parse_compact(receipt)
            key = self.keyring.find(str(token.header.get("kid", "")))
            if key is None or token.header.get("alg") != "ES256":
                raise ReceiptError("the receipt names no receipt key")
            if not signature_is_valid(token, key.private_key.public_key()):
                raise ReceiptError("the receipt's signature does not verify")
            return token.claims()
        except JWSError as exc:
            raise ReceiptError(str(exc)) from exc

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
        """Walks every event in order; the first one whose links, hash or receipt do not hold is reported."""
        with self.db.read() as conn:
            events = [ConsentEvent.from_row(r) for r in conn.execute(
                select(consent_events).order_by(consent_events.c.seq)).mappings().all()]
            records = {r["id"]: ConsentRecord.from_row(r) for r in conn.execute(
                select(consent_records)).mappings().all()}
            head = conn.execute(select(consent_chain_head).where(consent_chain_head.c.id == 1)).mappings().first()
        prev_hash = GENESIS_HASH
        last_status: dict[str, str] = {}
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
            if event_digest(prev_hash, ev.seq, record, ev.event, ev.at, ev.channel, ev.actor, ev.valid_until) != ev.hash:
                return broken("its content or its record's identity was changed")
            try:
                claims = self.read_receipt(ev.receipt)
            except ReceiptError:
                return broken("its receipt's signature does not verify")
            if claims.get("event", {}).get("hash") != ev.hash or claims.get("record_id") != ev.record_id:
                return broken("its receipt belongs to another event")
            prev_hash = ev.hash
            last_status[ev.record_id] = STATUS_AFTER[ev.event]
        if head is None or head["seq"] != len(events) or head["hash"] != prev_hash:
            return ChainReport(False, len(events), len(events) + 1, None, "events are missing after the last one")
        for record in records.values():
            if last_status.get(record.id) != record.status:
                last = max((e.seq for e in events if e.record_id == record.id), default=None)
                return ChainReport(False, len(events), last, record.id, "the record's status disagrees with its history")
        return ChainReport(True, len(events))

    # -- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _key(citizen_id: str, recipient: str, data_item: str, purpose: str) -> Any:
        return ((consent_records.c.citizen_id == citizen_id) & (consent_records.c.recipient == recipient)
                & (consent_records.c.data_item == data_item) & (consent_records.c.purpose == purpose))

    @staticmethod
    def _record_by_id(conn: Connection, record_id: str) -> ConsentRecord:
        return ConsentRecord.from_row(conn.execute(select(consent_records).where(
            consent_records.c.id == record_id)).mappings().one())


__all__ = ["DEFAULT_PURPOSE", "ChainReport", "ConsentChange", "ConsentEvent", "ConsentLedger", "ConsentRecord",
           "ReceiptError", "idempotency_key"]
