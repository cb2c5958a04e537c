"""Clarifying questions: when the router is not sure between two requests, ask which one was meant rather than
guess ("증명서 상태를 알려 드릴까요, 가족관계증명서에 대해 안내해 드릴까요?").

The next turn answers with an ordinal ("첫 번째", "the second one"), a yes (the first), a word of one offer
("상태", "발급 방법"), or anything the router finds much likelier for one candidate than for the other. The
chosen request then runs on what the citizen said the first time, slots and all.
"""

from __future__ import annotations

from dataclasses import dataclass

from skills.engine import DECLINED, DialogContext, Reply
from skills.faq import FaqSkill
from skills.sessions import ClarifyQuestion
from understanding.answers import parse_choice, parse_yes_no
from understanding.model import FAQ
from understanding.router import CLARIFY, OFFERABLE, Routing
from understanding.slots import squash

# An answer that is neither an ordinal nor a word of an offer picks a candidate when the router finds it this
# many times likelier than the other (and at least SCORE_FLOOR likely).
LIKELIER = 3.0
SCORE_FLOOR = 0.2


@dataclass(frozen=True)
class Offer:
    ko: str              # a clause ending in a question ("증명서 상태를 알려 드릴까요")
    en: str              # what follows "Do you want" ("the status of your certificates")
    words: tuple[str, ...]  # words of an answer that picks this offer, spaceless lower case

    def picked_by(self, answer: str) -> bool:
        return any(word in answer for word in self.words)


OFFERS: dict[str, Offer] = {
    "certificate_status": Offer("증명서 상태를 알려 드릴까요", "the status of your certificates",
                                ("상태", "확인", "status", "mycertificate")),
    "certificate_expiring": Offer("곧 만료되는 증명서를 알려 드릴까요", "which certificates expire soon",
                                  ("만료", "유효기간", "expir")),
    "consent_list": Offer("정보 공유 현황을 알려 드릴까요", "who your data is shared with",
                          ("현황", "목록", "어디", "누구", "who", "list")),
    "consent_off": Offer("정보 공유를 꺼 드릴까요", "to stop sharing your data", ("꺼", "끄", "중지", "stop", "off")),
    "consent_on": Offer("정보 공유를 켜 드릴까요", "to start sharing your data", ("켜", "허용", "start", "turnon")),
    "send_to_wallet": Offer("증명서를 전자지갑으로 보내 드릴까요", "to send a certificate to your wallet",
                            ("지갑", "보내", "wallet", "send")),
    "link_account": Offer("스피커를 계정에 연결해 드릴까요", "to link this speaker to your account",
                          ("연결", "link", "connect")),
    "help": Offer("제가 할 수 있는 일을 알려 드릴까요", "to hear what I can do", ("도움", "할수있", "help", "whatyoucando")),
    FAQ: Offer("관련 안내를 찾아 드릴까요", "general information on that",
               ("안내", "방법", "발급", "설명", "정보를", "how", "information", "info", "general")),
}
assert set(OFFERS) == OFFERABLE, "every offerable candidate needs its words here"


class ClarifySkill:
    name = "clarify"
    intents = (CLARIFY,)

    def __init__(self, faq: FaqSkill) -> None:
        # The FAQ names the topic it would answer with, so that "the FAQ" is offered as something concrete.
        self.faq = faq

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == CLARIFY and ctx.routing is not None

    def handle(self, ctx: DialogContext) -> Reply:
        assert ctx.routing is not None
        choices = list(ctx.routing.offered)
        ctx.session.pending = ClarifyQuestion(skill=self.name, choices=choices, text=ctx.turn.text,
                                              alternatives=list(ctx.turn.alternatives), slots=dict(ctx.slots))
        first, second = (self._offer(ctx, c) for c in choices)
        return ctx.say(f"{first[0]}, {second[0]}?", f"Do you want {first[1]}, or {second[1]}?", expects=CLARIFY)

    def choice(self, ctx: DialogContext, pending: ClarifyQuestion, routing: Routing) -> str | None:
        text = ctx.turn.text
        ordinal = parse_choice(text)
        if ordinal is not None:
            return pending.choices[ordinal]
        yes = parse_yes_no(text)
        if yes is not None:
            return pending.choices[0] if yes else DECLINED
        answer = squash(text)
        picked = [c for c in pending.choices if OFFERS[c].picked_by(answer)]
        if len(picked) == 1:
            return picked[0]
        if routing.intent in pending.choices:
            return routing.intent
        scores = ctx.engine.router.probabilities(text)
        first, second = (scores.get(c, 0.0) for c in pending.choices)
        if max(first, second) >= SCORE_FLOOR and max(first, second) >= LIKELIER * min(first, second):
            return pending.choices[0] if first > second else pending.choices[1]
        return None

    def ask_again(self, ctx: DialogContext, pending: ClarifyQuestion) -> Reply:
        ctx.intent = CLARIFY
        return ctx.say("첫 번째인지 두 번째인지 말씀해 주세요.", "Please say the first one or the second one.",
                       expects=CLARIFY)

    def declined(self, ctx: DialogContext) -> Reply:
        ctx.intent = CLARIFY
        return ctx.say("알겠어요. 다른 도움이 필요하면 말씀해 주세요.", "Okay. Tell me if there's anything else I can do.")

    def _offer(self, ctx: DialogContext, candidate: str) -> tuple[str, str]:
        offer = OFFERS[candidate]
        if candidate == FAQ and (topic := self.faq.confident_topic(ctx)):
            return (f"{self.faq.topic_name(topic, 'ko-KR')}에 대해 안내해 드릴까요",
                    f"information about {self.faq.topic_name(topic, 'en-US')}")
        return offer.ko, offer.en
