"""My Data consent by voice: list what is shared, and turn a consent off or on.

"국민건강보험공단에 소득 정보 공유 꺼줘" → (PIN) → "국민건강보험공단에 소득 정보 공유를 끌까요?" → "네" →
"국민건강보험공단에 소득 정보 공유를 껐어요." The recipient and the data item are slots matched tolerantly
(aliases, dropped spaces, a misheard syllable). A word that names two values is asked about before
anything personal ("소득 정보인가요, 건강보험 자격 정보인가요?"); a missing one is filled from the citizen's
own consents when only one fits, else asked for — after the PIN, because the choices are personal.
Every change is confirmed, made in one ledger transaction and read back. Asking for the state a
consent is already in changes nothing and says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.clock import utc_now
from domain.consent_ledger import ConsentLedger, ConsentRecord, idempotency_key
from domain.consent_terms import DEFAULT_PURPOSE
from skills.engine import DialogContext, Reply
from skills.spoken import english_list, korean_list, spoken_count, spoken_date, spoken_period, with_particle

CONSENT_SLOTS = ("recipient", "data_item")


def consent_slots(ctx: DialogContext) -> dict[str, list[str]]:
    """Recipients and data items named in this turn, looked up among those two types only (건보 is the
    agency here, not the document), exact aliases before near misses ("건강보험 공유 꺼줘" is the data item,
    not a misheard 건강보험공단)."""
    _, found = ctx.engine.router.vocabulary.find(ctx.turn.text, only=CONSENT_SLOTS)
    return found


class ConsentSkill:
    name = "consent"
    intents = ("consent_list", "consent_off", "consent_on")

    def __init__(self, ledger: ConsentLedger) -> None:
        self.ledger = ledger

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent in self.intents

    def handle(self, ctx: DialogContext) -> Reply:
        named = consent_slots(ctx)
        slots = {k: v for k, v in ctx.slots.items() if k in CONSENT_SLOTS}
        for slot_type, values in named.items():
            if len(values) == 1:
                slots[slot_type] = values[0]
        ctx.slots = slots
        if ctx.intent != "consent_list":
            # Which of two named values is meant is asked before the PIN: the question reveals nothing personal.
            for slot_type, values in named.items():
                if len(values) > 1:
                    return self._which(ctx, slot_type, values)
        if gate := ctx.require_personal():
            return gate
        assert ctx.citizen is not None
        ledger = self.ledger
        ledger.expire_due(ctx.citizen.id)
        if ctx.intent == "consent_list":
            return self._list(ctx, ledger)
        return self._toggle(ctx, ledger, ctx.intent == "consent_on")

    # -- listing ---------------------------------------------------------------------------------------

    def _list(self, ctx: DialogContext, ledger: ConsentLedger) -> Reply:
        assert ctx.citizen is not None
        now = utc_now()
        records = [r for r in ledger.records(ctx.citizen.id)
                   if "recipient" not in ctx.slots or r.recipient == ctx.slots["recipient"]]
        active = [r for r in records if r.is_active(now)]
        off = [r for r in records if not r.is_active(now)]
        title = ctx.text("정보 공유 동의", "Data sharing")
        if ctx.citizen.privacy == "brief":
            return ctx.say(
                f"정보 공유 동의가 {spoken_count(len(active), 'ko-KR', '건', '')} 있어요. 자세한 내용은 앱에서 확인해 주세요.",
                f"You have {spoken_count(len(active), 'en-US', '', 'active consent')}. "
                "You can see the details in the app.", title=title)
        if not active:
            ko = ["지금 정보를 공유하고 있는 곳이 없어요."]
            en = ["You're not sharing your data with anyone right now."]
        else:
            ko = [f"지금 정보 공유 동의가 {spoken_count(len(active), 'ko-KR', '건', '')} 있어요."]
            en = [f"You're sharing your data under {spoken_count(len(active), 'en-US', '', 'consent')}."]
            ko.append(", ".join(self._active_ko(ctx, r, now) for r in active) + " 공유하고 있어요.")
            en.append(" ".join(self._active_en(ctx, r, now) for r in active))
        if off:
            pairs = korean_list([f"{self._recipient(ctx, r.recipient)} {self._item(ctx, r.data_item)}" for r in off])
            ko.append(f"{pairs} 공유는 꺼 두었어요.")
            en.append(f"Sharing is off for {english_list([self._pair_en(ctx, r) for r in off])}.")
        return ctx.say(" ".join(ko), " ".join(en), title=title)

    def _active_ko(self, ctx: DialogContext, record: ConsentRecord, now: datetime) -> str:
        recipient, item = self._recipient(ctx, record.recipient), self._item(ctx, record.data_item)
        period = ""
        if record.since and record.valid_until:
            period = (f" {spoken_date(record.since.date(), 'ko-KR', now.date())}부터 "
                      f"{spoken_date(record.valid_until.date(), 'ko-KR', now.date())}까지")
        return f"{recipient}에 {with_particle(item, '를')}{period}"

    def _active_en(self, ctx: DialogContext, record: ConsentRecord, now: datetime) -> str:
        sentence = f"Your {self._item(ctx, record.data_item)} with {self._recipient(ctx, record.recipient)}"
        if record.since and record.valid_until:
            sentence += (f", from {spoken_date(record.since.date(), 'en-US', now.date())} until "
                         f"{spoken_date(record.valid_until.date(), 'en-US', now.date())}")
        return sentence + "."

    # -- toggling --------------------------------------------------------------------------------------

    def _toggle(self, ctx: DialogContext, ledger: ConsentLedger, active: bool) -> Reply:
        assert ctx.citizen is not None
        now = utc_now()
        recipient, item = ctx.slots.get("recipient"), ctx.slots.get("data_item")
        records = ledger.records(ctx.citizen.id)
        if not (recipient and item):
            fits = [r for r in records if (not recipient or r.recipient == recipient)
                    and (not item or r.data_item == item) and r.is_active(now) != active]
            if not active and not fits:
                return self._nothing_to_withdraw(ctx, recipient, item)
            if len(fits) == 1 and (recipient or item or not active):
                recipient, item = fits[0].recipient, fits[0].data_item
            elif not recipient:
                choices = sorted({r.recipient for r in fits}) if not active else None
                return self._ask_recipient(ctx, active, choices)
            else:
                choices = sorted({r.data_item for r in fits}) if not active else None
                if choices and len(choices) > 1:
                    return self._which(ctx, "data_item", choices)
                return self._ask_item(ctx, active, recipient)
        record = next((r for r in records if r.recipient == recipient and r.data_item == item
                       and r.purpose == DEFAULT_PURPOSE), None)
        if active and record is not None and record.is_active(now):
            return self._already(ctx, record, True)
        if not active and (record is None or not record.is_active(now)):
            return self._already(ctx, record, False, recipient, item)
        names = self._recipient(ctx, recipient), self._item(ctx, item)
        action = {"recipient": recipient, "data_item": item, "purpose": DEFAULT_PURPOSE, "active": active}
        ctx.slots = {"recipient": recipient, "data_item": item}
        if active:
            days = ledger.terms.purpose(DEFAULT_PURPOSE).validity.days
            return ctx.ask_confirmation(
                f"{names[0]}에 {names[1]} 공유를 켤까요? 공공서비스 신청에 쓰이고, {spoken_period(days, 'ko-KR')} 동안 "
                "유효해요.",
                f"Shall I start sharing your {names[1]} with {names[0]}? It's used when you apply for a public "
                f"service and is valid for {spoken_period(days, 'en-US')}.", action,
                title=ctx.text("정보 공유 켜기", "Turn sharing on"))
        return ctx.ask_confirmation(
            f"{names[0]}에 {names[1]} 공유를 끌까요?",
            f"Shall I stop sharing your {names[1]} with {names[0]}?", action,
            title=ctx.text("정보 공유 끄기", "Turn sharing off"))

    def confirmed(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        assert ctx.citizen is not None
        change = self.ledger.set_consent(
            ctx.citizen.id, action["recipient"], action["data_item"], action["purpose"], action["active"],
            channel=ctx.turn.channel, actor="principal", language=ctx.locale,
            idempotency_key=idempotency_key(ctx.turn.user_id, ctx.turn.request_id),
        )
        if not change.changed:
            return self._already(ctx, change.record, action["active"], action["recipient"], action["data_item"])
        recipient, item = self._recipient(ctx, action["recipient"]), self._item(ctx, action["data_item"])
        title = ctx.text("정보 공유", "Data sharing")
        if action["active"]:
            record = change.record
            assert record is not None and record.valid_until is not None
            until_ko = spoken_date(record.valid_until.date(), "ko-KR", utc_now().date())
            until_en = spoken_date(record.valid_until.date(), "en-US", utc_now().date())
            return ctx.say(
                f"{recipient}에 {item} 공유를 켰어요. {until_ko}까지 유효하고, 동의 영수증은 앱에서 볼 수 있어요.",
                f"Done: you're now sharing your {item} with {recipient}, until {until_en}. "
                "Your consent receipt is in the app.", title=title)
        return ctx.say(
            f"{recipient}에 {item} 공유를 껐어요. 동의 영수증은 앱에서 볼 수 있어요.",
            f"Done: I stopped sharing your {item} with {recipient}. Your receipt is in the app.", title=title)

    def declined(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        state_ko = "켜져" if not action["active"] else "꺼져"
        return ctx.say(f"알겠어요. 바꾸지 않았어요. 공유는 지금처럼 {state_ko} 있어요.",
                       "Okay, I didn't change anything. Sharing stays as it was.")

    # -- questions and answers -------------------------------------------------------------------------

    def _which(self, ctx: DialogContext, slot_type: str, values: list[str]) -> Reply:
        names = [ctx.slot_name(slot_type, v) for v in values]
        return ctx.ask_slot(
            slot_type, ", ".join(with_particle(n, "인가요") for n in names) + "?",
            f"Do you mean {english_list(names, 'or')}?", choices=list(values))

    def _ask_recipient(self, ctx: DialogContext, active: bool, choices: list[str] | None) -> Reply:
        if choices:
            names = [ctx.slot_name("recipient", c) for c in choices]
            return ctx.ask_slot(
                "recipient", f"어느 기관에 공유를 끌까요? {korean_list(names, '과')} 중에서 말씀해 주세요.",
                f"Which agency should I stop sharing with: {english_list(names, 'or')}?", choices=choices)
        return ctx.ask_slot("recipient", "어느 기관에 공유할까요?" if active else "어느 기관에 공유를 끌까요?",
                            "Which agency should I share with?" if active else "Which agency should I stop sharing with?")

    def _ask_item(self, ctx: DialogContext, active: bool, recipient: str) -> Reply:
        name = self._recipient(ctx, recipient)
        items = list(ctx.engine.router.vocabulary.types["data_item"])
        names_ko = korean_list([ctx.slot_name("data_item", i) for i in items], "과")
        names_en = english_list([ctx.slot_name("data_item", i) for i in items], "or")
        return ctx.ask_slot(
            "data_item", f"{name}에 어떤 정보를 {'공유할까요' if active else '그만 공유할까요'}? {names_ko} 중에서 말씀해 주세요.",
            f"Which data should {name} {'get' if active else 'stop getting'}: {names_en}?", choices=items)

    def _nothing_to_withdraw(self, ctx: DialogContext, recipient: str | None, item: str | None) -> Reply:
        if recipient:
            name = self._recipient(ctx, recipient)
            return ctx.say(f"{name}에는 지금 공유하고 있는 정보가 없어요.", f"You're not sharing any data with {name}.")
        if item:
            name = self._item(ctx, item)
            return ctx.say(f"{with_particle(name, '는')} 지금 어디에도 공유하고 있지 않아요.",
                           f"You're not sharing your {name} with anyone.")
        return ctx.say("지금 정보를 공유하고 있는 곳이 없어요.", "You're not sharing your data with anyone right now.")

    def _already(self, ctx: DialogContext, record: ConsentRecord | None, active: bool, recipient: str | None = None,
                 item: str | None = None) -> Reply:
        recipient_name = self._recipient(ctx, record.recipient if record else recipient or "")
        item_name = self._item(ctx, record.data_item if record else item or "")
        if active:
            until_ko = until_en = ""
            if record is not None and record.valid_until is not None:
                until_ko = f" {spoken_date(record.valid_until.date(), 'ko-KR', utc_now().date())}까지 유효해요."
                until_en = f", until {spoken_date(record.valid_until.date(), 'en-US', utc_now().date())}"
            return ctx.say(f"이미 {recipient_name}에 {with_particle(item_name, '를')} 공유하고 있어요.{until_ko}",
                           f"You're already sharing your {item_name} with {recipient_name}{until_en}.")
        return ctx.say(f"{recipient_name}에 {item_name} 공유는 이미 꺼져 있어요.",
                       f"Sharing your {item_name} with {recipient_name} is already off.")

    @staticmethod
    def _recipient(ctx: DialogContext, recipient: str) -> str:
        return ctx.slot_name("recipient", recipient)

    @staticmethod
    def _item(ctx: DialogContext, data_item: str) -> str:
        return ctx.slot_name("data_item", data_item)

    def _pair_en(self, ctx: DialogContext, record: ConsentRecord) -> str:
        return f"your {self._item(ctx, record.data_item)} with {self._recipient(ctx, record.recipient)}"
