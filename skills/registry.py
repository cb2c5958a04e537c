"""The chain of skills, in the order they are asked. Adding a skill is adding its module and one line here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services import DATA
from skills.builtin import CancelSkill, HelpSkill, LinkAccountSkill, NotUnderstoodSkill, RepeatSkill, WelcomeSkill
from skills.certificates import CertificateStatusSkill
from skills.consent import ConsentSkill
from skills.engine import DialogEngine, Skill
from skills.faq import FaqSkill, load_topic_names
from skills.nlu import IntentMatcher
from skills.wallet import SendToWalletSkill

if TYPE_CHECKING:
    from services import Services


def build_dialog_engine(services: Services) -> DialogEngine:
    skills: list[Skill] = [
        WelcomeSkill(), HelpSkill(), CancelSkill(), RepeatSkill(), LinkAccountSkill(), SendToWalletSkill(),
        CertificateStatusSkill(), ConsentSkill(),
    ]
    # Anything no skill claims is a question for the FAQ; without a loaded index, the plain fallback.
    faq = FaqSkill(load_topic_names(DATA / "retrieval" / "topic_names.yaml"), unavailable=NotUnderstoodSkill())
    return DialogEngine(services, IntentMatcher.load(DATA), skills, fallback=faq)
