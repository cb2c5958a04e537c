"""Built-in skills: welcome, help, cancel/stop, repeat, speaker linking, and the fallback when nothing matches."""

from __future__ import annotations

from domain.citizens import LINK_CODE_DIGITS
from domain.devices import is_anonymous
from skills.engine import PAIRING_ATTRIBUTE, DialogContext, Reply
from skills.spoken import english_count, mark_digits, with_particle
from understanding.answers import is_bare_answer, parse_digits
from wallet_bridge.presentation import SpeakerPairings


class WelcomeSkill:
    name = "welcome"
    intents = ("launch",)

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == "launch"

    def handle(self, ctx: DialogContext) -> Reply:
        return ctx.say(
            "민원 음성 도우미예요. 민원 안내, 내 증명서 상태, 전자문서지갑으로 보내기, 정보 공유 동의를 도와드려요. 무엇을 도와드릴까요?",
            "Welcome to Minwon Voice. I can answer questions about public services, read your certificates, "
            "send one to your wallet, and manage data sharing. What would you like to do?",
        )


class HelpSkill:
    name = "help"
    intents = ("help",)

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == "help"

    def handle(self, ctx: DialogContext) -> Reply:
        return ctx.say(
            "이렇게 말해 보세요. 등본 떼려면 어떻게 해? 내 증명서 상태 알려줘. 등본 지갑으로 보내줘. "
            "내 정보 어디에 공유하고 있어? 그만하려면 그만이라고 말씀하세요.",
            "You can say: how do I get a resident registration copy? What's the status of my certificates? "
            "Send my registration copy to my wallet. Who can see my data? To finish, say stop.",
            title="도움말" if ctx.ko else "Help",
        )


class SmallTalkSkill:
    """Greetings, thanks, and a bare yes or no when nothing was asked: a short answer in kind and a hint,
    never an FAQ guess (a lone "응" is no question about reissuing an ID card)."""

    name = "small_talk"
    intents = ("greeting", "thanks")

    def can_handle(self, ctx: DialogContext) -> bool:
        # A bare yes or no carries no request, whatever the router makes of it (a question it answers was
        # handled before any skill is asked).
        return ctx.intent in self.intents or (not ctx.turn.intent and is_bare_answer(ctx.turn.text))

    def handle(self, ctx: DialogContext) -> Reply:
        if ctx.intent == "greeting":
            return ctx.say("안녕하세요. 민원 안내, 내 증명서 상태, 정보 공유 설정을 도와드려요. 무엇을 도와드릴까요?",
                           "Hello. I can help with public services, your certificates and your data sharing. "
                           "What would you like to do?")
        if ctx.intent == "thanks":
            return ctx.say("천만에요. 더 필요한 게 있으면 말씀해 주세요.", "You're welcome. Anything else I can do?")
        ctx.intent = "small_talk"
        return ctx.say("무엇을 도와드릴까요? 예를 들어 내 증명서 상태 알려줘 라고 말해 보세요.",
                       "What would you like to do? For example, say: what's the status of my certificates?")


class CancelSkill:
    name = "cancel"
    intents = ("cancel", "stop")

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent in self.intents

    def handle(self, ctx: DialogContext) -> Reply:
        if ctx.intent == "stop":
            return ctx.say("이용해 주셔서 감사합니다. 안녕히 계세요.", "Thank you. Goodbye.", end=True)
        return ctx.say("취소했어요. 다른 도움이 필요하면 말씀해 주세요.", "Cancelled. What else can I do for you?")


class RepeatSkill:
    name = "repeat"
    intents = ("repeat",)

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == "repeat"

    def handle(self, ctx: DialogContext) -> Reply:
        last = ctx.session.last_reply
        if not last or not last.get("speech"):
            return ctx.say("아직 드린 말씀이 없어요. 무엇을 도와드릴까요?", "I haven't said anything yet. How can I help?")
        # The code markers are gone from the stored speech, so the SSML is rebuilt from plain text.
        return Reply(speech=last["speech"], intent="repeat", display=last.get("display"),
                     expects=last.get("expects"), grammar=last.get("grammar"), skill=self.name)


class LinkAccountSkill:
    """Links the speaker user to a citizen, two ways. Preferred: "link my account" gives a pairing number, read out
    digit by digit, that the citizen enters in the wallet app, which then presents the mobile ID (OpenID4VP); the
    outcome is told at the next turn (DialogEngine). Kept: "link code" and the eight digits an administrator printed
    with `app.py link-code`."""

    name = "link_account"
    intents = ("link_account",)

    def __init__(self, pairings: SpeakerPairings) -> None:
        self.pairings = pairings

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == "link_account"

    def handle(self, ctx: DialogContext) -> Reply:
        if is_anonymous(ctx.turn.user_id):
            return ctx.say(
                "이 기기는 아직 등록되지 않아서 계정에 연결할 수 없어요. 먼저 기기를 등록해 주세요.",
                "This device is not registered yet, so it cannot be linked to an account. Please register it first.",
            )
        code = parse_digits(ctx.turn.text.split("코드")[-1].lower().split("code")[-1])
        if code and len(code) == LINK_CODE_DIGITS:
            return self._redeem_code(ctx, code)
        if code or _mentions_code(ctx.turn.text):
            return ctx.say(
                "연결 코드는 여덟 자리 숫자예요. 연결 코드 다음에 숫자를 말씀해 주세요.",
                "A link code has eight digits. Say link code followed by the digits.",
            )
        if ctx.citizen is not None:
            return ctx.say(f"이 스피커는 이미 {ctx.citizen.name} 님 계정에 연결되어 있어요.",
                           f"This speaker is already linked to {ctx.citizen.name}'s account.")
        return self._pair(ctx)

    def _pair(self, ctx: DialogContext) -> Reply:
        started = self.pairings.start(ctx.turn.user_id)
        ctx.session.attributes[PAIRING_ATTRIBUTE] = True  # the next turns ask how it went
        minutes = max(1, self.pairings.config.pairing_ttl_s // 60)
        number = mark_digits(started.number)
        particle = with_particle(started.number, "을")[len(started.number):]  # 4를, 3을: as the last digit reads
        return ctx.say(
            f"지갑 앱에서 연결 번호 {number}{particle} 입력해 주세요. 다시 한 번, {number}. "
            f"번호는 {minutes}분 동안 한 번만 쓸 수 있어요. 모바일 신분증을 보여 주시면 연결돼요.",
            f"In your wallet app, enter the pairing number {number}. Once more: {number}. "
            f"It works once, for {english_count(minutes, 'minute')}. Share your mobile ID and this speaker is linked.",
            title=ctx.text("지갑으로 계정 연결", "Link with your wallet"),
            body=ctx.text(f"연결 번호 {started.number} ({minutes}분 안에 입력)",
                          f"Pairing number {started.number} (enter within {minutes} minutes)"),
        )

    def _redeem_code(self, ctx: DialogContext, code: str) -> Reply:
        attempt = ctx.engine.accounts.redeem_link_code(ctx.turn.user_id, code, origin=ctx.turn.origin)
        if attempt.throttled:
            return ctx.say(
                "연결 코드를 너무 여러 번 틀렸어요. 10분 뒤에 다시 시도해 주세요.",
                "Too many wrong link codes. Please try again in ten minutes.",
            )
        if attempt.citizen is None:
            return ctx.say(
                "연결 코드가 맞지 않거나 만료되었어요. 앱에서 새 코드를 받아 주세요.",
                "That link code is wrong or has expired. Please get a new code in the app.",
            )
        ctx.citizen = attempt.citizen
        # A new link: no PIN given before it counts, and the user's other sessions end.
        link = ctx.engine.accounts.link_of(ctx.turn.user_id)
        ctx.session.pin_citizen_id = None
        ctx.session.link_stamp = link.stamp if link else None
        ctx.engine.sessions.end_all_for(ctx.turn.user_id, keep=ctx.session.id)
        return ctx.say(
            "스피커가 계정에 연결되었어요. 이제 내 증명서 상태를 물어볼 수 있어요.",
            "This speaker is now linked to your account. You can ask about your certificates.",
        )


def _mentions_code(text: str) -> bool:
    lowered = text.lower()
    return "코드" in text or "code" in lowered


class NotUnderstoodSkill:
    """The last resort when FAQ retrieval is not available: say so and point to the 110 call centre."""

    name = "fallback"
    intents = ("fallback",)

    def can_handle(self, ctx: DialogContext) -> bool:
        return False

    def handle(self, ctx: DialogContext) -> Reply:
        ctx.intent = "fallback"
        return ctx.say(
            "죄송해요, 그 질문에는 답을 찾지 못했어요. 정부민원안내콜센터 110번으로 문의해 주세요.",
            "Sorry, I couldn't find an answer to that. You can call the government call centre at 110.",
        )
