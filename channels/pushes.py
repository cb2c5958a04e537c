"""Notification pushes through the platforms (issue 18, item 3): a Kakao i Open Builder bot event, an Alexa proactive
event (AMAZON.MessageAlert.Activated) and, for wallet credential events, a POST to the wallet's push URL.

What is pushed is always the same generic sentence ("민원 안내에 새 알림이 있어요. 스피커나 앱에서 확인하세요." /
"You have a new notice from Minwon Voice.") or, on Alexa, a message alert from "Minwon Voice" with a count of one:
no name, document, agency or date ever leaves in a push, and none is logged. The citizen hears the details after the
PIN, or reads them in the app.

Delivery: `domain.push_deliveries` queues one row per notification and opted-in channel in the notification's own
transaction; `PushDelivery.dispatch_due` (the worker's one pass, run every few seconds by `OutboxWorker`) claims due
rows one at a time and sends them through `outbound.py` (https to public addresses only, checked at send time, no
redirects). A failure (a 4xx or 5xx, a refused or failed connection) is retried with exponential backoff, and after
a day the push is marked failed; an Alexa 401/403 gets a fresh token and one more try at once. Quiet hours (the
citizen's, 21:00–08:00 Korean time by default) hold a push until they end. A platform this service has no
credentials for is recorded as not configured, one the citizen has no address on as no recipient, and one the
citizen turned off before the push went out as opted out: nothing is sent, nothing fails.

Several nodes: the claim (storage.py, shared with the wallet's offer pushes) lets one node send a row at a time; a
node that crashed mid-send leaves a claim that runs out and the row is sent again. A platform that got a repeat can
tell: the Alexa event's referenceId and the wallet's Idempotency-Key are the notification id.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from channels.speaker_ids import platform_user_key
from domain.citizens import Accounts
from domain.clock import Clock
from domain.notifications import Notifications
from domain.push_deliveries import (
    FAILED,
    HELD,
    NO_RECIPIENT,
    NOT_CONFIGURED,
    OPTED_OUT,
    PENDING,
    SENT,
    PushAddresses,
    PushClaim,
    PushQueue,
)
from domain.wallets import WalletRegistry
from outbound import OutboundPolicy
from settings import Settings
from storage import instance_id, retry_delay_s

log = logging.getLogger(__name__)

KAKAO, ALEXA, WALLET = "kakao", "alexa", "wallet"
GENERIC_TEXT = {
    "ko-KR": "민원 안내에 새 알림이 있어요. 스피커나 앱에서 확인하세요.",
    "en-US": "You have a new notice from Minwon Voice.",
}
# The sender Alexa names in "You have one new message from …": the service, never an agency.
ALEXA_CREATOR = "Minwon Voice"
ALEXA_SCOPE = "alexa::proactive_events"
ALEXA_EVENT = "AMAZON.MessageAlert.Activated"
# Alexa keeps a notification at most a day.
ALEXA_EXPIRY = timedelta(hours=23)
TOKEN_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class PushConfig:
    """The platforms' endpoints and credentials (MINWON_* settings; the secrets from the environment only, never
    logged: they are kept out of this object's repr)."""

    kakao_event_url: str = "https://bot-api.kakao.com"
    kakao_bot_id: str = ""
    kakao_rest_key: str = field(default="", repr=False)
    # The event name the bot's event block is registered under in Open Builder.
    kakao_event_name: str = "minwon_notice"
    alexa_events_url: str = ""
    alexa_token_url: str = "https://api.amazon.com/auth/o2/token"
    alexa_client_id: str = ""
    alexa_client_secret: str = field(default="", repr=False)
    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    give_up_after_s: float = 86400.0
    claim_lease_s: float = 60.0  # longer than one push's timeouts (a token request and two event POSTs)
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PushConfig:
        return cls(
            kakao_event_url=settings.get("MINWON_KAKAO_EVENT_URL", cls.kakao_event_url).rstrip("/"),
            kakao_bot_id=settings.get("MINWON_KAKAO_BOT_ID"),
            kakao_rest_key=settings.get("MINWON_KAKAO_REST_KEY"),
            kakao_event_name=settings.get("MINWON_KAKAO_EVENT_NAME", cls.kakao_event_name),
            alexa_events_url=settings.get("MINWON_ALEXA_EVENTS_URL"),
            alexa_token_url=settings.get("MINWON_ALEXA_TOKEN_URL", cls.alexa_token_url),
            alexa_client_id=settings.get("MINWON_ALEXA_CLIENT_ID"),
            alexa_client_secret=settings.get("MINWON_ALEXA_CLIENT_SECRET"),
            retry_base_s=float(settings.get("MINWON_PUSH_RETRY_BASE_S", str(cls.retry_base_s))),
            retry_max_s=float(settings.get("MINWON_PUSH_RETRY_MAX_S", str(cls.retry_max_s))),
            give_up_after_s=float(settings.get("MINWON_PUSH_GIVE_UP_S", str(cls.give_up_after_s))),
        )

    def configured(self, channel: str) -> bool:
        if channel == KAKAO:
            return bool(self.kakao_event_url and self.kakao_bot_id and self.kakao_rest_key)
        if channel == ALEXA:
            return bool(self.alexa_events_url and self.alexa_token_url and self.alexa_client_id
                        and self.alexa_client_secret)
        return channel == WALLET  # the wallet's own URL, registered with the wallet

    @property
    def kakao_talk_url(self) -> str:
        return f"{self.kakao_event_url}/v2/bots/{self.kakao_bot_id}/talk"


class PushRefused(Exception):
    """An attempt that did not get through; `status` is what is recorded (an HTTP status or an error's class)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class AlexaTokens:
    """Login with Amazon client-credentials tokens for the Proactive Events API, cached until shortly before they
    expire; `get(refresh=True)` drops the cached one (after a 401/403) and asks again."""

    def __init__(self, config: PushConfig, outbound: OutboundPolicy, clock: Clock) -> None:
        self.config, self.outbound, self.clock = config, outbound, clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires: datetime | None = None

    def get(self, *, refresh: bool = False) -> str:
        with self._lock:
            now = self.clock()
            if not refresh and self._token and self._expires and now < self._expires:
                return self._token
            self._token = None
            try:
                status, body = self.outbound.post_form_for_json(self.config.alexa_token_url, {
                    "grant_type": "client_credentials", "client_id": self.config.alexa_client_id,
                    "client_secret": self.config.alexa_client_secret, "scope": ALEXA_SCOPE,
                }, max_bytes=TOKEN_MAX_BYTES, timeout_s=self.config.timeout_s)
            except requests.RequestException as exc:
                raise PushRefused(f"token:{type(exc).__name__}") from None
            token = body.get("access_token") if isinstance(body, dict) else None
            if status != 200 or not isinstance(token, str) or not token:
                raise PushRefused(f"token:{status}")
            expires_in = body.get("expires_in")
            seconds = expires_in if isinstance(expires_in, int) and expires_in > 0 else 3600
            # A minute early: a token that expires in flight would cost a 401 and a second request.
            self._token, self._expires = token, now + timedelta(seconds=max(seconds - 60, 1))
            return token


@dataclass
class PushReport:
    """What one pass did, by the state each claimed push was left in."""

    outcomes: dict[str, int] = field(default_factory=dict)
    claims_lost: int = 0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class PushDelivery:
    def __init__(self, queue: PushQueue, notifications: Notifications, accounts: Accounts, wallets: WalletRegistry,
                 config: PushConfig, clock: Clock, outbound: OutboundPolicy | None = None,
                 node_id: str | None = None, addresses: PushAddresses | None = None) -> None:
        self.queue, self.notifications, self.accounts, self.wallets = queue, notifications, accounts, wallets
        self.addresses = addresses
        self.config = config
        self.clock = clock
        self.outbound = outbound or OutboundPolicy()
        self.node_id = node_id or instance_id()
        self.alexa_tokens = AlexaTokens(config, self.outbound, clock)

    def use(self, config: PushConfig, outbound: OutboundPolicy | None = None) -> None:
        """Other platform settings from now on (tests point them at their fakes); the token cache starts empty."""
        self.config = config
        self.outbound = outbound or self.outbound
        self.alexa_tokens = AlexaTokens(config, self.outbound, self.clock)

    def dispatch_due(self, limit: int = 20) -> PushReport:
        """The worker's one pass: claims and delivers due pushes one at a time, at most `limit` of them."""
        report = PushReport()
        for _ in range(limit):
            claim = self.queue.claim_next(self.node_id, timedelta(seconds=self.config.claim_lease_s))
            if claim is None:
                break
            outcome = self.deliver(claim)
            if outcome is None:
                report.claims_lost += 1
            else:
                report.count(outcome)
        return report

    def deliver(self, claim: PushClaim) -> str | None:
        """Sends one claimed push (or holds it, or records why not) and records the outcome; returns the state it was
        left in, None when the claim had run out and another node has the row now."""
        extra = {"push_id": claim.row_id, "channel": claim.channel, "attempt": claim.attempt}
        now = self.clock()
        chosen = self.notifications.settings(claim.citizen_id)
        if claim.channel not in chosen.channels:
            return self._record(claim, OPTED_OUT, extra, attempt_counted=False)
        held_until = chosen.quiet_until(now)
        if held_until is not None:
            return self._record(claim, HELD, extra, status="quiet_hours", next_attempt_at=held_until,
                                attempt_counted=False)
        if not self.config.configured(claim.channel):
            return self._record(claim, NOT_CONFIGURED, extra)
        citizen = self.accounts.citizen(claim.citizen_id)
        locale = citizen.locale if citizen and citizen.locale in GENERIC_TEXT else "ko-KR"
        try:
            sent = self._send(claim, GENERIC_TEXT[locale])
        except PushRefused as refused:
            status = refused.status
        else:
            if not sent:
                return self._record(claim, NO_RECIPIENT, extra)
            return self._record(claim, SENT, extra)
        now = self.clock()
        if now >= claim.created_at + timedelta(seconds=self.config.give_up_after_s):
            return self._record(claim, FAILED, extra, status=status)
        delay = retry_delay_s(claim.attempt, self.config.retry_base_s, self.config.retry_max_s)
        return self._record(claim, PENDING, extra, status=status, next_attempt_at=now + timedelta(seconds=delay))

    def _record(self, claim: PushClaim, state: str, extra: dict[str, Any], **values: Any) -> str | None:
        if not self.queue.record(claim, self.node_id, state, **values):
            log.warning("notification push outcome not recorded: the claim had run out", extra=extra)
            return None
        status = values.get("status")
        log.info("notification push " + state, extra={**extra, **({"status": status} if status else {})})
        return state

    # -- the platforms ---------------------------------------------------------------------------------------

    def _send(self, claim: PushClaim, text: str) -> bool:
        """Sends the push; False when the citizen has nobody to send it to on this channel; PushRefused when the
        platform did not take it."""
        if claim.channel == WALLET:
            wallet = self.wallets.for_citizen(claim.citizen_id)
            if wallet is None or not wallet.push_url:
                return False
            self._post(wallet.push_url, {"type": "notice", "notice_id": claim.notification_id, "text": text},
                       {"Idempotency-Key": f"notice:{claim.notification_id}"})
            return True
        users = [key for user in self.accounts.linked_users(claim.citizen_id)
                 if (key := self._platform_key(user, claim.channel)) is not None]
        if not users:
            return False
        if claim.channel == KAKAO:
            self._post(self.config.kakao_talk_url, kakao_event(self.config.kakao_event_name, users, text),
                       {"Authorization": f"KakaoAK {self.config.kakao_rest_key}"})
        elif claim.channel == ALEXA:
            for user in users:
                self._alexa(alexa_event(user, claim.notification_id, self.clock()))
        else:
            return False
        return True

    def _platform_key(self, user_id: str, platform: str) -> str | None:
        """The platform's id of a linked speaker user: inside the user id, or (a digested one) as its channel stored
        it; None when the user is another platform's or its id was never stored."""
        key = platform_user_key(user_id, platform)
        if key is None and self.addresses is not None and user_id.startswith(f"{platform}:h:"):
            key = self.addresses.address_of(user_id)
        return key

    def _alexa(self, event: dict[str, Any]) -> None:
        token = self.alexa_tokens.get()
        try:
            self._post(self.config.alexa_events_url, event, {"Authorization": f"Bearer {token}"})
        except PushRefused as refused:
            if refused.status not in ("401", "403"):
                raise
            # The token was revoked or has expired early: one fresh token, one more try.
            token = self.alexa_tokens.get(refresh=True)
            self._post(self.config.alexa_events_url, event, {"Authorization": f"Bearer {token}"})

    def _post(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> None:
        try:
            status = self.outbound.post_json(url, payload, headers=headers, timeout_s=self.config.timeout_s)
        except requests.RequestException as exc:  # OutboundRefused included: recorded and retried like a failure
            raise PushRefused(type(exc).__name__) from None
        if not 200 <= status < 300:
            raise PushRefused(str(status))


def kakao_event(event_name: str, bot_user_keys: list[str], text: str) -> dict[str, Any]:
    """An Open Builder Event API request: the event block's name, the users (bot user keys, as the bot's skill
    requests name them) and the text as an event parameter."""
    return {"event": {"name": event_name, "data": {"text": text}},
            "user": [{"type": "botUserKey", "id": key} for key in bot_user_keys],
            "params": {"text": text}}


def alexa_event(alexa_user_id: str, reference_id: str, now: datetime) -> dict[str, Any]:
    """An AMAZON.MessageAlert.Activated event for one Alexa user: one unread message from Minwon Voice."""
    stamp = now.replace(microsecond=0)
    return {
        "timestamp": _iso_z(stamp),
        "referenceId": reference_id,
        "expiryTime": _iso_z(stamp + ALEXA_EXPIRY),
        "event": {"name": ALEXA_EVENT, "payload": {
            "state": {"status": "UNREAD", "freshness": "NEW"},
            "messageGroup": {"creator": {"name": ALEXA_CREATOR}, "count": 1, "urgency": "URGENT"},
        }},
        "relevantAudience": {"type": "Unicast", "payload": {"user": alexa_user_id}},
    }


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
