"""The chain of skills, in the order they are asked. Adding a skill is adding its module and one line here.

The registry hands each skill the stores it works on; a skill never builds a store or looks one up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain.certificates import CertificateRecords
from domain.citizens import Accounts
from domain.clock import Clock
from domain.consent_ledger import ConsentLedger
from domain.notifications import Notifications
from settings import PROJECT_DATA
from skills.builtin import (
    CancelSkill,
    HelpSkill,
    LinkAccountSkill,
    NotUnderstoodSkill,
    RepeatSkill,
    SmallTalkSkill,
    WelcomeSkill,
)
from skills.certificates import CertificateStatusSkill
from skills.clarify import ClarifySkill
from skills.consent import ConsentSkill
from skills.engine import DialogEngine, Skill, TurnObserver
from skills.faq import FaqSkill, load_topic_names
from skills.notices import NoticeSkill
from skills.sessions import SessionStore
from skills.wallet import SendToWalletSkill
from storage import Database
from understanding.router import IntentRouter
from wallet_bridge.bridge import WalletBridge

if TYPE_CHECKING:
    from retrieval.search import FaqSearcher


@dataclass(frozen=True)
class DialogStores:
    """What the dialog reads and changes: the stores and the wallet bridge, built once by services.py."""

    db: Database
    accounts: Accounts
    sessions: SessionStore
    certificates: CertificateRecords
    consents: ConsentLedger
    wallet: WalletBridge
    clock: Clock
    notifications: Notifications


def build_dialog_engine(
    stores: DialogStores, router: IntentRouter, faq_searcher: Callable[[], FaqSearcher | None],
    observe_turn: TurnObserver | None = None,
) -> DialogEngine:
    # Anything no skill claims is a question for the FAQ; without a loaded index, the plain fallback.
    faq = FaqSkill(load_topic_names(PROJECT_DATA / "retrieval" / "topic_names.yaml"),
                   unavailable=NotUnderstoodSkill(), searcher=faq_searcher)
    notices = NoticeSkill(stores.notifications)
    skills: list[Skill] = [
        WelcomeSkill(), HelpSkill(), SmallTalkSkill(), CancelSkill(), RepeatSkill(), LinkAccountSkill(stores.wallet.pairings),
        SendToWalletSkill(stores.wallet),
        CertificateStatusSkill(stores.certificates, stores.wallet.wallet_copies, stores.clock),
        ConsentSkill(stores.consents), notices, ClarifySkill(faq),
    ]
    return DialogEngine(stores.db, stores.accounts, stores.sessions, router, skills, fallback=faq,
                        observe_turn=observe_turn, link_outcomes=stores.wallet.pairings.take_outcome,
                        notices=notices)
