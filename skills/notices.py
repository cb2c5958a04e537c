"""The citizen's notifications by voice (issue 18): the headline once per session, reading them after the PIN,
putting them off to the next session, and turning spoken headlines off.

A speaker is shared by a household, so before the PIN only a count is said ("새 알림이 두 건 있어요"): no
document, agency or date. After the PIN each unread notification is read in order and marked read.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from domain.clock import korean_today
from domain.notifications import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_EXPIRING,
    CERTIFICATE_ISSUED,
    CERTIFICATE_REFUSED,
    CONSENT_ENDING,
    CREDENTIAL_REVOKED,
    CREDENTIAL_SUSPENDED,
    OFFER_UNCLAIMED,
    Notification,
    Notifications,
)
from skills.certificates import document_name
from skills.engine import NOTICES_ATTRIBUTE, DialogContext, Reply, nothing_changed
from skills.sessions import ConfirmationQuestion
from skills.spoken import english_count, native_korean_count, spoken_date, with_particle
from understanding.answers import YES_NO_PHRASES

# At most this many are read in one reply; the rest stay unread for the next "알림 들려줘" or the app.
READ_AT_ONCE = 5
_KO_ORDINALS = ("첫째", "둘째", "셋째", "넷째", "다섯째")
_EN_ORDINALS = ("First", "Second", "Third", "Fourth", "Fifth")
READ = {"op": "read"}
OFF = {"op": "off"}


def headline_ko(count: int) -> str:
    return f"새 알림이 {native_korean_count(count, '건')} 있어요."


def headline_en(count: int) -> str:
    return f"You have {english_count(count, 'new notice')}."


class NoticeSkill:
    name = "notices"
    intents = ("notices_read", "notices_defer", "notices_off")

    def __init__(self, notifications: Notifications) -> None:
        self.notifications = notifications

    # -- the headline (DialogEngine asks, once per session) ----------------------------------------------

    def headline_count(self, citizen_id: str) -> int:
        return self.notifications.headline_count(citizen_id)

    def lead(self, ctx: DialogContext, count: int, reply: Reply) -> Reply:
        greeting_ko, greeting_en = ("안녕하세요. ", "Hello. ") if reply.intent == "greeting" else ("", "")
        it = "it" if count == 1 else "them"
        ctx.session.pending = ConfirmationQuestion(skill=self.name, intent="notices_read", action=dict(READ))
        lead = ctx.say(f"{greeting_ko}{headline_ko(count)} 들으시겠어요?",
                       f"{greeting_en}{headline_en(count)} Want to hear {it}?",
                       expects="confirmation", grammar=YES_NO_PHRASES[ctx.locale[:2]])
        lead.intent, lead.skill = reply.intent, self.name
        return lead

    def hint(self, ctx: DialogContext, count: int) -> str:
        it = "it" if count == 1 else "them"
        return ctx.text(f"{headline_ko(count)} 들으려면 '알림 들려줘'라고 말씀하세요.",
                        f"{headline_en(count)} To hear {it}, say read my notices.")

    # -- the intents -----------------------------------------------------------------------------------

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent in self.intents

    def handle(self, ctx: DialogContext) -> Reply:
        ctx.session.attributes[NOTICES_ATTRIBUTE] = True
        if ctx.intent == "notices_defer":
            return ctx.say("알겠어요. 알림은 다음에 다시 알려 드릴게요.", "Okay. I'll tell you about your notices next time.")
        if gate := ctx.require_personal():
            return gate
        assert ctx.citizen is not None
        if ctx.intent == "notices_off":
            if not self.notifications.settings(ctx.citizen.id).spoken_headlines:
                return ctx.say("새 알림 안내는 이미 꺼져 있어요. 알림은 앱에서 볼 수 있어요.",
                               "Spoken notice headlines are already off. Your notices are in the app.")
            return ctx.ask_confirmation(
                "대화를 시작할 때 새 알림을 알려 드리는 기능을 끌까요? 알림은 앱에서 계속 볼 수 있어요.",
                "Shall I stop telling you about new notices when we talk? You can still see them in the app.",
                dict(OFF), title=ctx.text("알림 안내 끄기", "Turn off notice headlines"))
        return self._read(ctx)

    def confirmed(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        if action.get("op") == "read":
            ctx.intent = "notices_read"
            return self.handle(ctx)
        assert ctx.citizen is not None
        current = self.notifications.settings(ctx.citizen.id)
        self.notifications.save_settings(ctx.citizen.id, current.__class__(
            False, current.channels, current.quiet_start, current.quiet_end))
        return ctx.say("새 알림 안내를 껐어요. 다시 켜려면 앱의 알림 설정에서 켜 주세요.",
                       "Done: I won't mention new notices any more. You can turn this back on in the app's settings.")

    def declined(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        if action.get("op") == "read":
            ctx.intent = "notices_defer"
            return ctx.say("알겠어요. 들으시려면 언제든 '알림 들려줘'라고 말씀하세요.",
                           "Okay. Whenever you want to hear them, say read my notices.")
        return nothing_changed(ctx)

    # -- reading ---------------------------------------------------------------------------------------

    def _read(self, ctx: DialogContext) -> Reply:
        assert ctx.citizen is not None
        unread = self.notifications.for_citizen(ctx.citizen.id, unread_only=True)
        title = ctx.text("알림", "Notices")
        if not unread:
            return ctx.say("새 알림이 없어요.", "You have no new notices.", title=title)
        if ctx.citizen.privacy == "brief":
            return ctx.say(f"{headline_ko(len(unread))} 자세한 내용은 앱에서 확인해 주세요.",
                           f"{headline_en(len(unread))} You can read them in the app.", title=title)
        today = korean_today()
        batch = unread[:READ_AT_ONCE]
        if len(batch) == 1:
            ko, en = [self._sentence(ctx, batch[0], today, "ko")], [self._sentence(ctx, batch[0], today, "en")]
        else:
            ko = [headline_ko(len(unread))]
            en = [headline_en(len(unread))]
            for i, item in enumerate(batch):
                ko.append(f"{_KO_ORDINALS[i]}, {self._sentence(ctx, item, today, 'ko')}")
                en.append(f"{_EN_ORDINALS[i]}, {self._sentence(ctx, item, today, 'en')}")
        rest = len(unread) - len(batch)
        if rest:
            ko.append(f"나머지 {native_korean_count(rest, '건')}은 다시 '알림 들려줘'라고 하시거나 앱에서 들으실 수 있어요.")
            en.append(f"{english_count(rest, 'more notice')} will be read next time, or see them in the app.")
        self.notifications.mark_read(ctx.citizen.id, [n.id for n in batch], via="voice")
        return ctx.say(" ".join(ko), " ".join(en), title=title)

    def _sentence(self, ctx: DialogContext, item: Notification, today: date, lang: str) -> str:
        facts = item.facts
        day = date.fromisoformat(facts["date"]) if "date" in facts else None
        locale = "ko-KR" if lang == "ko" else "en-US"
        when = spoken_date(day, locale, today) if day else ""
        doc = _name(ctx, "document", facts.get("doc_type", ""), locale)
        ko = lang == "ko"
        kind = item.kind
        if kind == CERTIFICATE_ISSUED:
            return f"{doc} 발급이 끝났어요." if ko else f"Your {doc} has been issued."
        if kind == CERTIFICATE_REFUSED:
            return (f"{doc} 신청이 반려됐어요. 자세한 사유는 발급 기관에 문의해 주세요." if ko
                    else f"Your application for a {doc} was refused. The issuing agency can tell you why.")
        if kind == CERTIFICATE_EXPIRING:
            return f"{doc} 유효기간이 {when}에 끝나요." if ko else f"Your {doc} expires on {when}."
        if kind == CERTIFICATE_EXPIRED:
            return f"{doc} 유효기간이 {when}에 끝났어요." if ko else f"Your {doc} expired on {when}."
        if kind == CONSENT_ENDING:
            recipient = _name(ctx, "recipient", facts.get("recipient", ""), locale)
            data_item = _name(ctx, "data_item", facts.get("data_item", ""), locale)
            return (f"{recipient}에 {data_item} 공유 동의가 {when}에 끝나요." if ko
                    else f"Your consent to share your {data_item} with {recipient} ends on {when}.")
        if kind == CREDENTIAL_REVOKED:
            return (f"전자문서지갑의 {with_particle(doc, '가')} 폐기됐어요." if ko
                    else f"The {doc} in your wallet was revoked.")
        if kind == CREDENTIAL_SUSPENDED:
            return (f"전자문서지갑의 {with_particle(doc, '가')} 정지됐어요." if ko
                    else f"The {doc} in your wallet was suspended.")
        if kind == OFFER_UNCLAIMED:
            return (f"전자문서지갑으로 보낸 {with_particle(doc, '를')} 아직 받지 않으셨어요." if ko
                    else f"The {doc} sent to your wallet has not been collected yet.")
        return "알림이 하나 있어요." if ko else "There is a notice."


def _name(ctx: DialogContext, slot_type: str, value_id: str, locale: str) -> str:
    """A slot value's spoken name in `locale` (the session's language decides which sentence is used)."""
    vocabulary = ctx.engine.router.vocabulary.types.get(slot_type, {})
    if value_id in vocabulary:
        return vocabulary[value_id].name(locale)
    if slot_type == "document":
        return document_name(ctx, value_id)
    return value_id.replace("-", " ")
