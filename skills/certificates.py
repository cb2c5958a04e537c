"""Certificate status, read out from the citizen's records: one document, all of them, or the ones expiring.

Each certificate is put in words as one of: valid (until when), valid without an end date, expiring
soon (within 14 days: in how many days), expired (since when), revoked, suspended, or an application
in progress (since when, and what happens next). "Needs attention" means the citizen may have to do
something: expiring soon, expired, revoked or suspended.

A general question is answered briefly — counts first, then the ones that need attention — and the
rest is offered as details. With the citizen's privacy setting "brief" only a count is spoken, never
a document name. Nothing personal is said before the PIN step-up (`ctx.require_personal`).

Wallet copies come from the wallet bridge's record of issued credentials: a valid copy is mentioned
with a valid document, and a revoked or suspended copy is always said, since the citizen may be
showing it to someone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.certificates import Certificate, CertificateRecords
from domain.clock import Clock, korean_today, utc_now
from skills.engine import DialogContext, Reply
from skills.spoken import (
    days_from_now,
    english_list,
    english_number,
    korean_list,
    spoken_count,
    spoken_date,
    with_particle,
)

EXPIRING_WITHIN_DAYS = 14
ATTENTION = ("expiring", "expired", "revoked", "suspended")


@dataclass(frozen=True)
class CertificateState:
    certificate: Certificate
    kind: str  # valid | valid_open | expiring | expired | revoked | suspended | in_progress
    days: int | None = None  # days to expiry (expiring) or since expiry (expired) or since applying

    @property
    def needs_attention(self) -> bool:
        return self.kind in ATTENTION


def classify(certificate: Certificate, today: date) -> CertificateState:
    status = certificate.status_on(today)
    if status == "issued":
        if certificate.valid_until is None:
            return CertificateState(certificate, "valid_open")
        left = (certificate.valid_until - today).days
        return CertificateState(certificate, "expiring" if left <= EXPIRING_WITHIN_DAYS else "valid", left)
    if status == "expired":
        assert certificate.valid_until is not None
        return CertificateState(certificate, "expired", (today - certificate.valid_until).days)
    if status == "in_progress":
        since = (today - certificate.applied_on).days if certificate.applied_on else None
        return CertificateState(certificate, "in_progress", since)
    return CertificateState(certificate, status)


# citizen id → {doc_type: the state of its newest copy in the citizen's wallet: valid | revoked | suspended}
WalletCopies = Callable[[str], dict[str, str]]


def document_name(ctx: DialogContext, doc_type: str) -> str:
    """The spoken name of a document type; a type the vocabulary does not know yet is said by its id."""
    if doc_type in ctx.engine.router.vocabulary.types.get("document", {}):
        return ctx.slot_name("document", doc_type)
    return doc_type.replace("-", " ")


def document_from_text(ctx: DialogContext) -> str | None:
    """The document named in this turn, looked up among documents only (so 건강보험 is the certificate here,
    not the consent data item); falls back to a document the engine carried over (after the PIN)."""
    _, found = ctx.engine.router.vocabulary.find(ctx.turn.text, only="document")
    named = found.get("document", [])
    return named[0] if len(named) == 1 else ctx.slots.get("document")


class CertificateStatusSkill:
    name = "certificates"
    intents = ("certificate_status", "certificate_expiring")

    def __init__(self, records: CertificateRecords, wallet_copies: WalletCopies, clock: Clock = utc_now) -> None:
        self.records = records
        self.wallet_copies = wallet_copies
        self.clock = clock

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent in self.intents

    def handle(self, ctx: DialogContext) -> Reply:
        document = document_from_text(ctx)
        ctx.slots = {k: v for k, v in ctx.slots.items() if k != "document"}
        if document:
            ctx.slots["document"] = document
        if gate := ctx.require_personal():
            return gate
        assert ctx.citizen is not None
        today = korean_today(self.clock)
        states = [classify(c, today) for c in self.records.for_citizen(ctx.citizen.id)]
        if ctx.citizen.privacy == "brief":
            return self._brief(ctx, states)
        copies = self.wallet_copies(ctx.citizen.id)
        if document:
            return self._one(ctx, document, [s for s in states if s.certificate.doc_type == document], copies, today)
        if ctx.intent == "certificate_expiring":
            return self._expiring(ctx, states, today)
        return self._summary(ctx, states, copies, today)

    def confirmed(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        """The citizen said yes to hearing the details."""
        assert ctx.citizen is not None
        today = korean_today(self.clock)
        states = [classify(c, today) for c in self.records.for_citizen(ctx.citizen.id)]
        shown = set(action.get("skip", []))
        rest = [s for s in states if s.certificate.id not in shown]
        copies = self.wallet_copies(ctx.citizen.id)
        sentences = [sentence(ctx, s, today, copies) for s in rest]
        return ctx.say(" ".join(s[0] for s in sentences), " ".join(s[1] for s in sentences),
                       title=ctx.text("내 증명서", "My certificates"))

    def declined(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        # A "no" to hearing the details changes nothing and needs no reassurance that nothing changed.
        return ctx.say("알겠어요. 다른 도움이 필요하면 말씀해 주세요.", "Okay. What else can I do for you?")

    # -- answers ---------------------------------------------------------------------------------------

    def _brief(self, ctx: DialogContext, states: list[CertificateState]) -> Reply:
        attention = sum(s.needs_attention for s in states)
        if not attention:
            return ctx.say("확인이 필요한 증명서는 없어요. 자세한 내용은 앱에서 확인해 주세요.",
                           "None of your certificates needs attention. You can see the details in the app.")
        return ctx.say(
            f"확인이 필요한 증명서가 {spoken_count(attention, 'ko-KR', '건', '')} 있어요. 앱에서 확인해 주세요.",
            f"You have {spoken_count(attention, 'en-US', '', 'certificate')} that "
            f"{'needs' if attention == 1 else 'need'} attention. Please check the app.",
        )

    def _one(self, ctx: DialogContext, document: str, states: list[CertificateState], copies: dict[str, str],
             today: date) -> Reply:
        name = document_name(ctx, document)
        title = name
        if not states:
            return ctx.say(f"{with_particle(name, '은')} 발급받았거나 신청한 기록이 없어요.",
                           f"I don't see a {name} issued to you or applied for.", title=title)
        sentences = [sentence(ctx, s, today, copies, wallet_absent=True) for s in states]
        return ctx.say(" ".join(s[0] for s in sentences), " ".join(s[1] for s in sentences), title=title)

    def _expiring(self, ctx: DialogContext, states: list[CertificateState], today: date) -> Reply:
        expiring = [s for s in states if s.kind == "expiring"]
        expired = [s for s in states if s.kind == "expired"]
        if not expiring and not expired:
            return ctx.say("곧 만료되거나 만료된 증명서는 없어요.", "None of your certificates is expiring or expired.")
        ko, en = [], []
        if expiring:
            ko.append(f"곧 만료되는 증명서는 {spoken_count(len(expiring), 'ko-KR', '건', '')}이에요.")
            en.append(f"{spoken_count(len(expiring), 'en-US', '', 'certificate').capitalize()} "
                      f"{'expires' if len(expiring) == 1 else 'expire'} soon.")
        else:
            ko.append("곧 만료되는 증명서는 없어요.")
            en.append("Nothing expires soon.")
        for s in expiring + expired:
            k, e = sentence(ctx, s, today, {})
            ko.append(k)
            en.append(e)
        return ctx.say(" ".join(ko), " ".join(en), title=ctx.text("만료 예정 증명서", "Expiring certificates"))

    def _summary(self, ctx: DialogContext, states: list[CertificateState], copies: dict[str, str],
                 today: date) -> Reply:
        if not states:
            return ctx.say("발급받았거나 신청한 증명서가 없어요.", "You have no certificates issued or applied for.")
        total = len(states)
        attention = [s for s in states if s.needs_attention]
        in_progress = [s for s in states if s.kind == "in_progress"]
        total_ko = spoken_count(total, "ko-KR", "건", "")
        total_en = spoken_count(total, "en-US", "", "certificate")
        if attention:
            ko = [f"증명서 {total_ko} 중 {spoken_count(len(attention), 'ko-KR', '건', '')}은 확인이 필요해요."]
            en = [f"Of your {total_en}, {english_number(len(attention))} "
                  f"{'needs' if len(attention) == 1 else 'need'} attention."]
            if total == len(attention):
                ko = [f"증명서 {total_ko} 모두 확인이 필요해요."]
                en = [f"All {total_en} need attention." if total > 1 else "Your one certificate needs attention."]
        else:
            ko = [f"증명서 {total_ko} 중 확인이 필요한 것은 없어요."]
            en = [f"You have {total_en}, and none needs attention."]
        for s in attention:
            k, e = sentence(ctx, s, today, copies)
            ko.append(k)
            en.append(e)
        if in_progress:
            names_ko = korean_list([document_name(ctx, s.certificate.doc_type) for s in in_progress])
            names_en = english_list([document_name(ctx, s.certificate.doc_type) for s in in_progress])
            ko.append(f"{with_particle(names_ko, '은')} 처리 중이에요.")
            en.append(f"Your {names_en} {'is' if len(in_progress) == 1 else 'are'} in progress.")
        rest = [s for s in states if not s.needs_attention]
        if not rest:
            return ctx.say(" ".join(ko), " ".join(en), title=ctx.text("내 증명서", "My certificates"))
        ko.append("나머지도 자세히 들으시겠어요?")
        en.append("Would you like the details of the others?")
        return ctx.ask_confirmation(" ".join(ko), " ".join(en), {"skip": [s.certificate.id for s in attention]},
                                    title=ctx.text("내 증명서", "My certificates"))


def sentence(ctx: DialogContext, state: CertificateState, today: date, copies: dict[str, str],
             wallet_absent: bool = False) -> tuple[str, str]:
    """One certificate's state in a Korean and an English sentence."""
    cert = state.certificate
    name = document_name(ctx, cert.doc_type)
    topic = with_particle(name, "은")
    when = (lambda d: spoken_date(d, "ko-KR", today)), (lambda d: spoken_date(d, "en-US", today))
    kind = state.kind
    if kind == "valid":
        assert cert.valid_until is not None
        ko = f"{topic} {when[0](cert.valid_until)}까지 유효해요."
        en = f"Your {name} is valid until {when[1](cert.valid_until)}."
    elif kind == "valid_open":
        ko = f"{topic} 발급되어 있고 유효기간이 따로 없어요."
        en = f"Your {name} is issued and has no expiry date."
    elif kind == "expiring":
        assert cert.valid_until is not None and state.days is not None
        if state.days == 0:
            ko = f"{topic} 오늘까지만 유효해요."
            en = f"Your {name} expires today."
        else:
            ko = f"{topic} {days_from_now(state.days, 'ko-KR')}인 {when[0](cert.valid_until)}에 만료돼요."
            en = f"Your {name} expires {days_from_now(state.days, 'en-US')}, on {when[1](cert.valid_until)}."
    elif kind == "expired":
        assert cert.valid_until is not None and state.days is not None
        ko = f"{topic} {when[0](cert.valid_until)}에 만료되었어요. 필요하면 새로 발급받아 주세요."
        en = f"Your {name} expired on {when[1](cert.valid_until)}. Please get a new one if you need it."
    elif kind == "revoked":
        ko = f"{topic} 취소되었어요. 필요하면 다시 발급받아 주세요."
        en = f"Your {name} was revoked. Please get a new one if you need it."
    elif kind == "suspended":
        ko = f"{topic} 효력이 정지되어 있어요. 발급 기관에 문의해 주세요."
        en = f"Your {name} is suspended. Please contact the issuing office."
    else:  # in_progress
        if cert.applied_on is not None and state.days is not None:
            ago_ko = days_from_now(-state.days, "ko-KR")
            since_ko = ("" if state.days == 0 else f"{ago_ko}인 ") + when[0](cert.applied_on)
            ko = (f"{since_ko}에 신청하신 {topic} 처리 중이에요. 담당 기관이 확인을 마치면 발급되고, "
                  "그때 알림을 보내 드려요.")
            en = (f"Your {name} application from {when[1](cert.applied_on)} is in progress. Next, the issuing "
                  "office checks it; you'll get a notification when it's issued.")
        else:
            ko = f"{topic} 처리 중이에요. 발급되면 알림을 보내 드려요."
            en = f"Your {name} is in progress. You'll get a notification when it's issued."
    copy = copies.get(cert.doc_type)
    if copy == "revoked":
        ko += " 전자문서지갑의 사본은 폐기되었어요."
        en += " The copy in your wallet has been revoked."
    elif copy == "suspended":
        ko += " 전자문서지갑의 사본은 효력이 정지되어 있어요."
        en += " The copy in your wallet is suspended."
    elif kind in ("valid", "valid_open", "expiring"):
        if copy == "valid":
            ko += " 전자문서지갑에도 사본이 있어요."
            en += " A copy is in your wallet."
        elif wallet_absent:
            ko += " 전자문서지갑에는 아직 사본이 없어요."
            en += " There is no copy in your wallet yet."
    return ko, en
