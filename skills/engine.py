"""The dialog engine: sessions, locale, intent + slots, confirmation and PIN step-up, then a chain of skills.

Every channel hands in the same Turn and renders the same Reply. Skills plug in as ask-sdk handlers:
`can_handle(ctx)` / `handle(ctx)`, plus `confirmed(ctx, action)` for changes that were confirmed.
Cross-cutting work (linking, PIN step-up, pending questions, idempotent retries) lives here, once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from domain.citizens import LOCKED_UNTIL_RESET, Accounts, Citizen
from domain.clock import utc_now
from domain.devices import is_anonymous
from observability import log_ref
from settings import DEFAULT_LOCALE, SUPPORTED_LOCALES
from skills.sessions import (
    ClarifyQuestion,
    ConfirmationQuestion,
    DialogSession,
    PendingQuestion,
    PinQuestion,
    SessionStore,
    SlotQuestion,
)
from skills.spoken import english_count, plain_speech, to_ssml
from storage import Database
from understanding.answers import DIGIT_PHRASES, YES_NO_PHRASES, parse_choice, parse_digits, parse_yes_no
from understanding.router import IntentRouter, Routing
from wallet_bridge.presentation import LinkOutcome

log = logging.getLogger(__name__)

# Reply.skill of the linking instructions a personal request gets from an unlinked speaker user.
LINK_REQUIRED_SKILL = "account_link"
# Session attribute: a pairing number was read out in this session, so each turn asks how the wallet linking went.
PAIRING_ATTRIBUTE = "pairing_pending"


@dataclass
class Turn:
    """One turn from any channel. `user_id` is the principal the channel authenticated (a device token,
    a verified platform request) or an anonymous one; never a claim taken from a request body."""

    user_id: str
    text: str = ""
    session_id: str | None = None
    # The platform's own session key (a digest) when the platform does not carry the service's session id.
    platform_session: str | None = None
    # The calling address, for the per-address limits of the dialog (link-code guesses).
    origin: str = "-"
    locale: str | None = None
    channel: str = "native"
    device_id: str | None = None
    request_id: str | None = None
    alternatives: list[str] = field(default_factory=list)
    intent: str | None = None
    slots: dict[str, str] = field(default_factory=dict)
    # "launch" | "session_end" | "unsupported" (the platform matched an intent or action this service does
    # not define: it carries no words of the citizen's to route) | None
    event: str | None = None


@dataclass
class Reply:
    speech: str
    intent: str
    session_id: str = ""
    locale: str = DEFAULT_LOCALE
    ssml: str = ""
    display: dict[str, str] | None = None
    end_session: bool = False
    expects: str | None = None
    grammar: list[str] | None = None
    skill: str = ""

    def to_api(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id, "speech": self.speech, "ssml": self.ssml, "display": self.display,
            "intent": self.intent, "end_session": self.end_session, "expects": self.expects,
        }


@dataclass(frozen=True)
class ExpectedInput:
    mode: str  # "open" | "limited"
    phrases: list[str]
    locale: str
    expects: str | None = None  # the open question's kind: "pin" answers are a run of digit phrases


class Skill(Protocol):
    name: str
    intents: tuple[str, ...]

    def can_handle(self, ctx: DialogContext) -> bool: ...

    def handle(self, ctx: DialogContext) -> Reply: ...


@runtime_checkable
class ConfirmingSkill(Skill, Protocol):
    """A skill that asks before it acts (`ctx.ask_confirmation`) and is called back with the answer."""

    def confirmed(self, ctx: DialogContext, action: dict[str, Any]) -> Reply: ...

    def declined(self, ctx: DialogContext, action: dict[str, Any]) -> Reply: ...


@runtime_checkable
class ClarifyingSkill(Skill, Protocol):
    """A skill that asks which of two candidate requests was meant (`ClarifyQuestion`) and reads the answer."""

    def choice(self, ctx: DialogContext, pending: ClarifyQuestion, routing: Routing) -> str | None:
        """The chosen candidate, DECLINED for "neither", or None when the turn does not answer the question."""
        ...

    def ask_again(self, ctx: DialogContext, pending: ClarifyQuestion) -> Reply: ...

    def declined(self, ctx: DialogContext) -> Reply: ...


def answers(pending: PendingQuestion, text: str) -> bool:
    """Whether `text` is, on its face, an answer of the kind the open question asks for."""
    if isinstance(pending, PinQuestion):
        return parse_digits(text) is not None
    if isinstance(pending, ConfirmationQuestion | ClarifyQuestion):
        return parse_yes_no(text) is not None or (isinstance(pending, ClarifyQuestion) and parse_choice(text) is not None)
    return False


# What `ClarifyingSkill.choice` returns when the citizen wants neither candidate.
DECLINED = ""
# A clarifying question asked again this often without an answer is dropped.
CLARIFY_TRIES = 2


def nothing_changed(ctx: DialogContext) -> Reply:
    """What a declined change says."""
    return ctx.say("알겠어요. 아무것도 바꾸지 않았어요.", "Okay. I didn't change anything.")


def locked_notice(ctx: DialogContext, until: datetime, *, just_locked: bool) -> Reply:
    """Says that personal data is locked after wrong PINs, and for how long ("15분", "1시간"), or that only
    the call centre can unlock it after repeated locks."""
    if until >= LOCKED_UNTIL_RESET:
        return ctx.say(
            "비밀번호를 너무 여러 번 틀려서 개인 정보가 잠겼어요. 정부민원안내콜센터 110번에 잠금 해제를 요청해 주세요.",
            "Too many wrong PINs, so personal information is locked. Please call the government call centre "
            "at 110 to have it unlocked.")
    minutes = max(1, math.ceil((until - utc_now()).total_seconds() / 60))
    if minutes > 60:
        hours = math.ceil(minutes / 60)
        ko_span, en_span = f"{hours}시간", english_count(hours, "hour")
    elif minutes == 60:
        ko_span, en_span = "1시간", "an hour"
    else:
        ko_span, en_span = f"{minutes}분", english_count(minutes, "minute")
    if just_locked:
        return ctx.say(f"비밀번호를 다섯 번 틀려서 {ko_span} 동안 잠겼어요. 잠시 후에 다시 시도해 주세요.",
                       f"That was the fifth wrong PIN, so personal information is locked for {en_span}.")
    return ctx.say(f"비밀번호를 여러 번 틀려서 {ko_span} 동안 개인 정보를 들을 수 없어요. 잠시 후에 다시 시도해 주세요.",
                   f"Too many wrong PINs. Personal information is locked for {en_span}. Please try again later.")


class NoticeHeadlines(Protocol):
    """What the engine asks about the citizen's unread notifications, once per session (the notices skill)."""

    def headline_count(self, citizen_id: str) -> int:
        """Unread notifications to announce; 0 when there are none or spoken headlines are off."""
        ...

    def lead(self, ctx: DialogContext, count: int, reply: Reply) -> Reply:
        """The opening reply (launch, greeting) that asks whether to read them."""
        ...

    def hint(self, ctx: DialogContext, count: int) -> str:
        """The sentence added to the reply that completes a request."""
        ...


# Session attribute: the unread notifications were announced (or heard, or deferred) in this session.
NOTICES_ATTRIBUTE = "notices_told"
NOTICE_INTENTS = ("notices_read", "notices_defer", "notices_off")
# A session that opens with one of these gets the headline as its question.
OPENING_INTENTS = ("launch", "greeting")
# Replies that complete nothing the citizen asked for: no headline is added to them.
NO_HINT_INTENTS = ("not_understood", "session_end", "stop", "repeat", "cancel", "faq_not_sure")

# Called after every turn with (skill, intent, started): the metrics hook.
TurnObserver = Callable[[str, str, float], None]
# speaker user -> the outcome of a wallet linking not yet told to them (marked told), or None.
LinkOutcomes = Callable[[str], LinkOutcome | None]


class DialogContext:
    def __init__(self, engine: DialogEngine, turn: Turn, session: DialogSession, citizen: Citizen | None) -> None:
        self.engine = engine
        self.turn = turn
        self.session = session
        self.citizen = citizen
        self.intent: str | None = turn.intent
        self.slots: dict[str, str] = dict(turn.slots)
        self.ambiguous: dict[str, list[str]] = {}
        # What the router made of this turn (None when a channel named the intent itself).
        self.routing: Routing | None = None
        self.skill_name = ""

    @property
    def locale(self) -> str:
        return self.session.locale

    @property
    def ko(self) -> bool:
        return self.locale.startswith("ko")

    def text(self, ko: str, en: str) -> str:
        return ko if self.ko else en

    def say(
        self, ko: str, en: str, *, title: str | None = None, body: str | None = None, end: bool = False,
        expects: str | None = None, grammar: list[str] | None = None,
    ) -> Reply:
        speech = self.text(ko, en)
        display = {"title": title or "", "body": body if body is not None else plain_speech(speech)} if (
            title or body) else None
        return Reply(
            speech=speech, intent=self.intent or "fallback", display=display, end_session=end, expects=expects,
            grammar=grammar, skill=self.skill_name,
        )

    def require_personal(self) -> Reply | None:
        """Linking instructions, a lockout notice or a PIN prompt; None once personal data may be spoken."""
        if self.citizen is None:
            reply = self.say(
                "이 스피커는 아직 본인 계정에 연결되지 않았어요. 계정 연결해 줘 라고 말씀하시면 지갑 앱의 모바일 신분증으로 "
                "연결할 수 있어요. 연결 코드를 받으셨다면 연결 코드 다음에 여덟 자리 숫자를 말씀해 주세요.",
                "This speaker is not linked to your account yet. Say link my account to link it with the mobile ID "
                "in your wallet app, or, if you have a link code, say link code followed by the eight digits.",
                title=self.text("계정 연결 필요", "Account linking needed"),
            )
            # Channels tell the platform (NUGU's result code, Alexa's card) that linking is missing.
            reply.skill = LINK_REQUIRED_SKILL
            return reply
        # The lockout as read with the citizen at the start of this turn (one query for the link, the citizen and
        # its lockout, whichever node set it); a PIN checked in this turn answers its own lockout.
        if until := self.citizen.locked_on(utc_now()):
            return locked_notice(self, until, just_locked=False)
        if self.session.pin_given_for(self.citizen.id):
            return None
        self.session.pending = PinQuestion(intent=self.intent, slots=dict(self.slots))
        return self.say(
            "본인 확인을 위해 네 자리 비밀번호를 말씀해 주세요.",
            "To confirm it's you, please say your four-digit PIN.",
            expects="pin", grammar=DIGIT_PHRASES[self.locale[:2]],
        )

    def ask_confirmation(self, ko: str, en: str, action: dict[str, Any], **display: str) -> Reply:
        self.session.pending = ConfirmationQuestion(skill=self.skill_name, intent=self.intent, action=action)
        return self.say(ko, en, expects="confirmation", grammar=YES_NO_PHRASES[self.locale[:2]], **display)

    def ask_slot(self, slot_type: str, ko: str, en: str, choices: list[str] | None = None) -> Reply:
        """Asks for a missing or ambiguous slot; the next turn's answer is matched against `choices` (value ids)."""
        self.session.pending = SlotQuestion(slot=slot_type, intent=self.intent, slots=dict(self.slots),
                                            choices=choices)
        vocabulary = self.engine.router.vocabulary.types.get(slot_type, {})
        ids = choices or list(vocabulary)
        grammar = [vocabulary[i].name(self.locale) for i in ids if i in vocabulary]
        return self.say(ko, en, expects="slot", grammar=grammar)

    def slot_name(self, slot_type: str, value_id: str) -> str:
        return self.engine.router.vocabulary.value(slot_type, value_id).name(self.locale)


class DialogEngine:
    def __init__(
        self, db: Database, accounts: Accounts, sessions: SessionStore, router: IntentRouter, skills: list[Skill],
        fallback: Skill, observe_turn: TurnObserver | None = None, link_outcomes: LinkOutcomes | None = None,
        notices: NoticeHeadlines | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.sessions = sessions
        self.router = router
        self.skills = list(skills)
        self.fallback = fallback
        self.observe_turn = observe_turn
        self.link_outcomes = link_outcomes
        self.notices = notices
        self._confirming = {s.name: s for s in [*self.skills, fallback] if isinstance(s, ConfirmingSkill)}
        self._clarifying = {s.name: s for s in [*self.skills, fallback] if isinstance(s, ClarifyingSkill)}

    def add_skill(self, skill: Skill) -> None:
        """Appends a skill to the chain (before the fallback)."""
        self.skills.append(skill)
        if isinstance(skill, ConfirmingSkill):
            self._confirming[skill.name] = skill
        if isinstance(skill, ClarifyingSkill):
            self._clarifying[skill.name] = skill

    # -- the turn ------------------------------------------------------------------------------------

    def converse(self, turn: Turn) -> Reply:
        """The reply to a turn. A turn with a request id is answered once: a retry, or a copy racing on another
        thread or node, gets the stored reply of the first."""
        if turn.locale is not None and turn.locale not in SUPPORTED_LOCALES:
            raise ValueError(f"unsupported locale {turn.locale}")
        if not turn.request_id:
            return self._answer(turn)
        stored = self.sessions.claim_request(turn.user_id, turn.session_id, turn.request_id)
        if stored is not None:
            return Reply(**stored)
        answered = False
        try:
            reply = self._answer(turn)
            answered = True
            return reply
        finally:
            self.sessions.release_claim(turn.user_id, turn.request_id, answered=answered)

    def _answer(self, turn: Turn) -> Reply:
        started = time.perf_counter()
        session_id = turn.session_id
        if session_id is None and turn.platform_session:
            session_id = self.sessions.for_platform(turn.user_id, turn.platform_session)
        # Someone else's session id, an expired one or an unknown one never continues: a new session starts,
        # under a new random id.
        session = self.sessions.load(session_id, turn.user_id)
        link = self.accounts.link_of(turn.user_id)
        link_stamp = link.stamp if link else None
        if session is not None and session.link_stamp != link_stamp:
            # The speaker was linked, relinked or unlinked since this session began: nothing said or
            # proven in it (a PIN above all) carries over.
            self.sessions.end(session.id)
            session = None
        citizen = link.citizen if link else None
        if session is None:
            session = DialogSession(
                id=SessionStore.new_id(), user_id=turn.user_id, platform_session=turn.platform_session,
                locale=turn.locale or (citizen.locale if citizen else DEFAULT_LOCALE), link_stamp=link_stamp,
            )
        elif turn.locale:
            session.locale = turn.locale
        ctx = DialogContext(self, turn, session, citizen)
        told = self._link_outcome(ctx)
        reply = self._notice_headline(ctx, self._dispatch(ctx))
        if told:
            reply.speech = f"{told} {reply.speech}".strip()
        reply.session_id = session.id
        reply.locale = session.locale
        reply.intent = reply.intent or ctx.intent or "fallback"
        reply.ssml = to_ssml(reply.speech)
        reply.speech = plain_speech(reply.speech)
        if reply.intent != "repeat":
            session.last_reply = asdict(reply)
        if reply.end_session:
            session.pending = None
        # A turn that changed nothing (the same question again, a repeat) and has no reply to keep for a retry
        # writes nothing: no transaction, no write lock. One that only writes its session writes it in one
        # statement, which is atomic by itself: no BEGIN and COMMIT around it (two round trips on PostgreSQL).
        # The session and the reply kept for a retry are one transaction, so a retry finds both or neither.
        if turn.request_id:
            with self.db.transaction() as conn:
                self.sessions.save(conn, session)
                self.sessions.store_reply(conn, turn.user_id, session.id, turn.request_id, asdict(reply))
        elif self.sessions.needs_save(session):
            with self.db.autocommit() as conn:
                self.sessions.save(conn, session)
        if self.observe_turn is not None:
            self.observe_turn(reply.skill or "engine", reply.intent, started)
        log.info("turn", extra={"channel": turn.channel, "intent": reply.intent, "skill": reply.skill,
                                "expects": reply.expects, "session_ref": log_ref(session.id)})
        return reply

    def _link_outcome(self, ctx: DialogContext) -> str:
        """What the speaker says first when a wallet linking finished since its last turn ("홍길동 님으로
        연결됐어요"), or "". Asked in a new session (a link ends the user's sessions) and in a session where a
        pairing number was read out; not on every turn of every session."""
        session = ctx.session
        if self.link_outcomes is None or is_anonymous(ctx.turn.user_id) or not (
                session.is_new or session.attributes.get(PAIRING_ATTRIBUTE)):
            return ""
        outcome = self.link_outcomes(ctx.turn.user_id)
        if outcome is None:
            return ""
        session.attributes.pop(PAIRING_ATTRIBUTE, None)
        if outcome.linked and ctx.citizen is not None and ctx.citizen.id == outcome.citizen_id:
            return ctx.text(f"{ctx.citizen.name} 님으로 연결됐어요.", f"This speaker is now linked to {ctx.citizen.name}.")
        if outcome.linked:
            return ""  # linked, then relinked some other way before this turn: the older news is stale
        return ctx.text("지갑으로 계정을 연결하지 못했어요. 다시 하려면 계정 연결해 줘 라고 말씀해 주세요.",
                        "I couldn't link your account with the wallet. To try again, say link my account.")

    def _notice_headline(self, ctx: DialogContext, reply: Reply) -> Reply:
        """Once per session of a linked citizen: the count of unread notifications, nothing more (a speaker is
        shared, so no document, agency or date before the PIN). A session opened by a launch or a greeting is
        answered with the question whether to read them; otherwise the request is handled as it would be, and the
        headline is added to the reply that completes it — never to a PIN, confirmation or other question."""
        session = ctx.session
        if self.notices is None or ctx.citizen is None or session.attributes.get(NOTICES_ATTRIBUTE):
            return reply
        if reply.intent in NOTICE_INTENTS or ctx.intent in NOTICE_INTENTS:
            session.attributes[NOTICES_ATTRIBUTE] = True  # asked for them, or put them off, in its own words
            return reply
        opening = session.is_new and reply.intent in OPENING_INTENTS and session.pending is None
        completes = (session.pending is None and reply.expects is None and not reply.end_session
                     and reply.intent not in NO_HINT_INTENTS and reply.skill != LINK_REQUIRED_SKILL)
        if not (opening or completes):
            return reply
        session.attributes[NOTICES_ATTRIBUTE] = True
        count = self.notices.headline_count(ctx.citizen.id)
        if count <= 0:
            return reply
        if opening:
            return self.notices.lead(ctx, count, reply)
        reply.speech = f"{reply.speech} {self.notices.hint(ctx, count)}".strip()
        return reply

    def expected_input(self, session_id: str | None, user_id: str) -> ExpectedInput:
        session = self.sessions.load(session_id, user_id)
        if session is None:
            return ExpectedInput("open", [], DEFAULT_LOCALE)
        last = session.last_reply or {}
        if session.pending and last.get("grammar"):
            return ExpectedInput("limited", list(last["grammar"]), session.locale, last.get("expects"))
        return ExpectedInput("open", [], session.locale)

    def _dispatch(self, ctx: DialogContext) -> Reply:
        turn = ctx.turn
        if turn.event == "session_end":
            ctx.intent = "session_end"
            return Reply(speech="", intent="session_end", end_session=True)
        if turn.event == "launch" and not turn.text:
            ctx.intent = "launch"
            return self._route(ctx, "launch")
        if turn.event == "unsupported":
            return self._unsupported(ctx)
        if not turn.text.strip() and not turn.intent:
            ctx.intent = ctx.intent or "not_understood"
            # The open question stays open, and so does what the speech recogniser should listen for.
            last = (ctx.session.last_reply or {}) if ctx.session.pending else {}
            return ctx.say("잘 듣지 못했어요. 다시 말씀해 주세요.", "Sorry, I didn't catch that. Please say it again.",
                           expects=last.get("expects"), grammar=last.get("grammar"))
        routing = self._understand(ctx)
        pending = ctx.session.pending
        # Cancel, stop, help and repeat leave an open question alone, unless the turn is plainly its answer ("아니요"
        # to a confirmation is a no, whatever else the router hears in it).
        if pending and (routing.intent not in ("cancel", "stop", "help", "repeat") or answers(pending, turn.text)):
            reply = self._answer_pending(ctx, pending, routing)
            if reply is not None:
                return reply
        if routing.intent in ("cancel", "stop"):
            ctx.session.pending = None
        ctx.routing = routing if not turn.intent else None
        ctx.intent = turn.intent or routing.decision
        ctx.slots = {**routing.slots, **turn.slots}
        ctx.ambiguous = routing.ambiguous
        return self._route(ctx, ctx.intent)

    @staticmethod
    def _unsupported(ctx: DialogContext) -> Reply:
        """The honest answer to a request the service has no intent for; an open question stays open."""
        ctx.intent = "faq_not_sure"
        last = (ctx.session.last_reply or {}) if ctx.session.pending else {}
        return ctx.say(
            "그 요청은 제가 도와드릴 수 없어요. 증명서 상태, 정보 공유 동의, 전자지갑 발급이나 정부 민원 안내를 물어봐 주세요.",
            "Sorry, I can't help with that. You can ask about your certificates, data-sharing consents, "
            "your digital wallet, or government services.",
            expects=last.get("expects"), grammar=last.get("grammar"))

    def _understand(self, ctx: DialogContext) -> Routing:
        """The router's decision on the turn's transcripts; a channel that named the intent itself is believed."""
        if ctx.turn.intent:
            intent = ctx.turn.intent
            return Routing(decision=intent, probability=1.0, candidates=((intent, 1.0),), slots=dict(ctx.turn.slots))
        return self.router.route(ctx.turn.text, ctx.turn.alternatives)

    def _route(self, ctx: DialogContext, intent: str | None) -> Reply:
        ctx.intent = intent
        for skill in self.skills:
            if skill.can_handle(ctx):
                ctx.skill_name = skill.name
                return skill.handle(ctx)
        ctx.skill_name = self.fallback.name
        return self.fallback.handle(ctx)

    # -- pending questions ---------------------------------------------------------------------------

    def _answer_pending(self, ctx: DialogContext, pending: PendingQuestion, routing: Routing) -> Reply | None:
        """The reply to an answer of the open question, or None when the turn is about something else."""
        text = ctx.turn.text
        if isinstance(pending, PinQuestion):
            digits = parse_digits(text) or next(filter(None, map(parse_digits, ctx.turn.alternatives)), None)
            if digits is None:
                if routing.intent:
                    ctx.session.pending = None
                    return None
                ctx.intent = pending.intent
                return ctx.say("네 자리 비밀번호를 숫자로 말씀해 주세요.", "Please say your four-digit PIN as numbers.",
                               expects="pin", grammar=DIGIT_PHRASES[ctx.locale[:2]])
            return self._check_pin(ctx, pending, digits)
        if isinstance(pending, ConfirmationQuestion):
            answer = parse_yes_no(text)
            if answer is None:
                answer = next((a for a in map(parse_yes_no, ctx.turn.alternatives) if a is not None), None)
            ctx.intent = pending.intent
            if answer is None:
                if routing.intent:
                    ctx.session.pending = None
                    return None
                return ctx.say("네 또는 아니요로 답해 주세요.", "Please answer yes or no.", expects="confirmation",
                               grammar=YES_NO_PHRASES[ctx.locale[:2]])
            ctx.session.pending = None
            skill = self._confirming[pending.skill]
            ctx.skill_name = skill.name
            if not answer:
                return skill.declined(ctx, pending.action)
            return skill.confirmed(ctx, pending.action)
        if isinstance(pending, ClarifyQuestion):
            return self._answer_clarify(ctx, pending, routing)
        _, found = self.router.vocabulary.find(text, only=pending.slot)
        values = [v for v in found.get(pending.slot, []) if not pending.choices or v in pending.choices]
        if len(values) != 1:
            if routing.intent and routing.intent != pending.intent:
                ctx.session.pending = None
                return None
            pending.tries += 1
            ctx.intent = pending.intent
            if pending.tries >= 3:
                ctx.session.pending = None
                return ctx.say("잘 알아듣지 못해서 요청을 취소했어요.", "I couldn't understand, so I cancelled the request.")
            return ctx.say("다시 한 번 말씀해 주세요.", "Could you say that again?", expects="slot",
                           grammar=(ctx.session.last_reply or {}).get("grammar"))
        ctx.session.pending = None
        ctx.slots = {**pending.slots, pending.slot: values[0]}
        return self._route(ctx, pending.intent)

    def _answer_clarify(self, ctx: DialogContext, pending: ClarifyQuestion, routing: Routing) -> Reply | None:
        """Routes the original request to the candidate the citizen chose, with what they said then."""
        skill = self._clarifying[pending.skill]
        ctx.skill_name = skill.name
        choice = skill.choice(ctx, pending, routing)
        if choice is None:
            if routing.intent and routing.intent not in pending.choices:
                ctx.session.pending = None  # a new request: the question is left
                return None
            pending.tries += 1
            if pending.tries >= CLARIFY_TRIES:
                ctx.session.pending = None
                return skill.declined(ctx)
            return skill.ask_again(ctx, pending)
        ctx.session.pending = None
        if choice == DECLINED:
            return skill.declined(ctx)
        ctx.turn = replace(ctx.turn, text=pending.text, alternatives=list(pending.alternatives))
        ctx.slots = dict(pending.slots)
        ctx.routing = None
        return self._route(ctx, choice)

    def _check_pin(self, ctx: DialogContext, pending: PinQuestion, digits: str) -> Reply:
        assert ctx.citizen is not None
        result = self.accounts.verify_pin(ctx.citizen.id, digits)
        ctx.intent = pending.intent
        if result.ok:
            ctx.session.pin_citizen_id = ctx.citizen.id
            ctx.session.pending = None
            ctx.slots = dict(pending.slots)
            return self._route(ctx, pending.intent)
        if result.locked:
            ctx.session.pending = None
            assert result.locked_until is not None
            return locked_notice(ctx, result.locked_until, just_locked=True)
        remaining_ko = {4: "네 번", 3: "세 번", 2: "두 번", 1: "한 번"}.get(result.remaining, f"{result.remaining}번")
        return ctx.say(
            f"비밀번호가 맞지 않아요. {remaining_ko} 더 시도할 수 있어요. 다시 말씀해 주세요.",
            f"That PIN is not right. You have {result.remaining} more "
            f"{'try' if result.remaining == 1 else 'tries'}. Please say it again.",
            expects="pin", grammar=DIGIT_PHRASES[ctx.locale[:2]],
        )
