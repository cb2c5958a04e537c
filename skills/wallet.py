"""Sending a certificate to the citizen's digital wallet: "주민등록표 등본 지갑으로 보내줘".

Document slot → confirmation → PIN step-up → a credential offer in the wallet's mailbox, with the
tx_code read aloud digit by digit: the wallet app gets the offer, the citizen types the code they
heard. The confirmation's action carries its own idempotency key, so however often the confirmed
step runs (a retried request, a PIN prompt in between) it makes one offer.
"""

from __future__ import annotations

import secrets
from typing import Any

from skills.engine import DialogContext, Reply, nothing_changed
from skills.sessions import PinQuestion
from skills.spoken import mark_digits, with_particle
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.documents import DOCUMENT_TYPES

# A confirmed send that waits for the PIN; kept in the server-side session, not in slots a channel can set.
CONFIRMED = "wallet_confirmed_send"


class SendToWalletSkill:
    name = "wallet"
    intents = ("send_to_wallet",)

    def __init__(self, bridge: WalletBridge) -> None:
        self.bridge = bridge

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == "send_to_wallet"

    def handle(self, ctx: DialogContext) -> Reply:
        if ctx.citizen is None:
            return ctx.require_personal()  # linking instructions
        confirmed = ctx.session.attributes.pop(CONFIRMED, None)
        if confirmed and ctx.session.pin_given_for(ctx.citizen.id) and ctx.slots.get(CONFIRMED) == confirmed["key"]:
            # Back from the PIN step-up that followed this very confirmation.
            return self._send(ctx, confirmed)
        document = self._document(ctx)
        if document is None:
            choices = ctx.ambiguous.get("document")
            return ctx.ask_slot("document", "어떤 서류를 전자지갑으로 보낼까요?",
                                "Which document should I send to your wallet?", choices=choices)
        if self.bridge.wallets.for_citizen(ctx.citizen.id) is None:
            return self._no_wallet(ctx)
        name_ko, name_en = self._names(document)
        return ctx.ask_confirmation(
            f"{with_particle(name_ko, '을')} 전자지갑으로 보낼까요?",
            f"Shall I send your {name_en} to your digital wallet?",
            {"document": document, "key": secrets.token_urlsafe(12)},
            title=ctx.text("전자지갑으로 보내기", "Send to wallet"),
        )

    def declined(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        return nothing_changed(ctx)

    def confirmed(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        # The PIN prompt keeps the slots and routes back to handle(): the key in them ties that turn to this
        # confirmation, so a later, different request never sends what was confirmed here.
        ctx.slots[CONFIRMED] = action["key"]
        gate = ctx.require_personal()
        if gate is not None:
            if isinstance(ctx.session.pending, PinQuestion):
                ctx.session.attributes[CONFIRMED] = action
            return gate
        return self._send(ctx, action)

    # -- the send ---------------------------------------------------------------------------------------

    def _send(self, ctx: DialogContext, action: dict[str, Any]) -> Reply:
        assert ctx.citizen is not None
        bridge = self.bridge
        document = action["document"]
        name_ko, name_en = self._names(document)
        wallet = bridge.wallets.for_citizen(ctx.citizen.id)
        if wallet is None:
            return self._no_wallet(ctx)
        certificates = bridge.documents.certificates(ctx.citizen.id, document)
        issued = next((c for c in certificates if bridge.documents.status(c) == "issued"), None)
        if issued is None:
            status = bridge.documents.status(certificates[0]) if certificates else "none"
            return self._not_issued(ctx, name_ko, name_en, status)
        offer = bridge.offers.create_offer(
            ctx.citizen.id, wallet.id, issued.id, document, idempotency_key=f"voice:{action['key']}",
            push_url=wallet.push_url,
        )
        minutes = bridge.config.offer_ttl_s // 60
        code = mark_digits(offer.tx_code)
        return ctx.say(
            f"{with_particle(name_ko, '을')} 전자지갑으로 보냈어요. 지갑 앱에 확인 코드를 입력해 주세요. "
            f"확인 코드는 {code}. 다시 한 번, {code}. 코드는 {minutes}분 동안 쓸 수 있어요.",
            f"I sent your {name_en} to your digital wallet. Enter the confirmation code in the wallet app. "
            f"The code is {code}. Once more: {code}. It works for {minutes} minutes.",
            title=ctx.text("전자지갑 확인 코드", "Wallet confirmation code"),
            body=ctx.text(f"{offer.tx_code} ({minutes}분 안에 입력)", f"{offer.tx_code} (enter within {minutes} minutes)"),
        )

    def _not_issued(self, ctx: DialogContext, name_ko: str, name_en: str, status: str) -> Reply:
        topic = with_particle(name_ko, "은")
        ko, en = {
            "in_progress": (f"{topic} 아직 발급 처리 중이라 지갑으로 보낼 수 없어요. 발급이 끝나면 다시 말씀해 주세요.",
                            f"Your {name_en} is still being processed, so I can't send it yet. "
                            "Ask again once it has been issued."),
            "expired": (f"{topic} 유효기간이 지나서 보낼 수 없어요. 정부24에서 새로 발급받은 뒤에 다시 말씀해 주세요.",
                        f"Your {name_en} has expired, so I can't send it. Get a new one issued first, then ask again."),
            "revoked": (f"{topic} 취소된 서류라서 지갑으로 보낼 수 없어요.",
                        f"Your {name_en} was revoked, so it can't go to your wallet."),
            "suspended": (f"{topic} 효력이 정지된 상태라서 지갑으로 보낼 수 없어요.",
                          f"Your {name_en} is suspended, so it can't go to your wallet."),
        }.get(status, (f"{topic} 발급받은 기록이 없어요. 정부24에서 먼저 발급받은 뒤에 다시 말씀해 주세요.",
                       f"You have no {name_en} on record. Have one issued first, then ask again."))
        return ctx.say(ko, en)

    @staticmethod
    def _no_wallet(ctx: DialogContext) -> Reply:
        return ctx.say(
            "등록된 전자지갑이 없어요. 휴대폰의 전자지갑 앱에서 정부24 계정으로 로그인하고 지갑 등록을 누르면 돼요. "
            "등록한 뒤에 다시 말씀해 주세요.",
            "You have no digital wallet registered. Open your wallet app, sign in with your government account "
            "and tap register wallet, then ask me again.",
            title=ctx.text("전자지갑 등록 안내", "Register a wallet"),
        )

    @staticmethod
    def _document(ctx: DialogContext) -> str | None:
        document = ctx.slots.get("document")
        return document if document in DOCUMENT_TYPES else None

    @staticmethod
    def _names(document: str) -> tuple[str, str]:
        return DOCUMENT_TYPES[document].name_ko, DOCUMENT_TYPES[document].name_en.lower()
