"""Alexa request envelope → the service's Turn.

Alexa has already recognised the intent and its slots; the Turn carries them (slot values as the
service's value ids, from entity resolution when it matched) together with a plain sentence built from
them, because the dialog engine answers open questions (yes/no, PIN digits, link codes) from words.
Missing pieces are normal, not errors: requests without a session (System.ExceptionEncountered),
slots without values, SessionEndedRequests without a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from channels.alexa.interaction_model import (
    BUILT_IN_FOR_SERVICE,
    FAQ_INTENT,
    FAQ_SLOT,
    NUMBER_PLACEHOLDERS,
    PIN_INTENT,
    PIN_SLOT,
    AlexaCatalog,
)
from channels.speaker_ids import speaker_session_id, speaker_user_id
from domain.citizens import LINK_CODE_DIGITS
from http_api import ApiError
from skills.engine import Turn

PLATFORM = "alexa"
# Built-ins that answer an open question with a word rather than start an intent.
SPOKEN_BUILT_INS = {"AMAZON.YesIntent": "yes", "AMAZON.NoIntent": "no"}
_SERVICE_FOR_BUILT_IN = {alexa: service for service, alexa in BUILT_IN_FOR_SERVICE.items()}
_SERVICE_FOR_BUILT_IN["AMAZON.NavigateHomeIntent"] = "cancel"


@dataclass(frozen=True)
class SlotReading:
    name: str
    spoken: str | None  # what the user said, as Alexa heard it
    resolved_id: str | None  # the catalog value id when entity resolution matched
    resolved_name: str | None

    @property
    def value(self) -> str | None:
        """The resolved value when there is one (``JFK`` for "my home airport"), else the spoken words."""
        return self.resolved_name or self.spoken


@dataclass
class AlexaRequest:
    request_type: str
    user_id: str
    request_id: str | None = None
    # A digest of Alexa's sessionId: which service session continues is looked up server-side.
    platform_session: str | None = None
    session_new: bool = False
    session_attributes: dict[str, Any] = field(default_factory=dict)
    access_token: str | None = None
    application_id: str | None = None
    locale: str = "en-US"
    device_id: str | None = None
    intent_name: str | None = None
    confirmation_status: str | None = None
    dialog_state: str | None = None
    slots: dict[str, SlotReading] = field(default_factory=dict)
    raw_intent: dict[str, Any] | None = None
    reason: str | None = None
    error_type: str | None = None
    # Alexa's own userId: only for a push to this user (channels/pushes.py); never logged.
    platform_user: str = field(default="", repr=False)

    @property
    def in_dialog(self) -> bool:
        """Alexa is still collecting this intent's slots itself: delegate, do not fulfil yet."""
        return self.request_type == "IntentRequest" and self.dialog_state in ("STARTED", "IN_PROGRESS")

    def to_turn(self, catalog: AlexaCatalog) -> Turn:
        turn = Turn(
            user_id=self.user_id,
            platform_session=self.platform_session,
            locale=self.locale,
            channel=PLATFORM,
            device_id=self.device_id,
            request_id=self.request_id,
        )
        if self.request_type == "LaunchRequest":
            turn.event = "launch"
        elif self.request_type == "SessionEndedRequest":
            turn.event = "session_end"
        elif self.request_type == "IntentRequest" and self.intent_name:
            self._fill_intent(turn, catalog)
        return turn

    def _fill_intent(self, turn: Turn, catalog: AlexaCatalog) -> None:
        name = self.intent_name or ""
        if name in SPOKEN_BUILT_INS:
            turn.text = SPOKEN_BUILT_INS[name]
        elif name in _SERVICE_FOR_BUILT_IN:
            service = _SERVICE_FOR_BUILT_IN[name]
            turn.intent = service
            turn.text = catalog.utterance(service, {}) if service in catalog.intents else service
        elif name == PIN_INTENT:
            turn.text = _digits(self.slots.get(PIN_SLOT)) or ""
        elif name == FAQ_INTENT:
            turn.text = (self.slots[FAQ_SLOT].spoken or "") if FAQ_SLOT in self.slots else ""
        elif vocabulary := catalog.answer_vocabulary(name):
            reading = self.slots.get(vocabulary)
            if reading and reading.resolved_id:
                turn.slots = {vocabulary: reading.resolved_id}
                turn.text = catalog.value_name(vocabulary, reading.resolved_id) or reading.value or ""
            else:
                turn.text = (reading.spoken if reading else None) or ""
        elif service := catalog.service_intent(name):
            turn.intent = service
            turn.slots = self._service_slots(catalog, service)
            turn.text = catalog.utterance(service, turn.slots)
        else:
            # An intent this skill does not define, or AMAZON.FallbackIntent (Alexa heard words outside the
            # model): there are no words to route, so the engine gives its honest "can't help with that".
            turn.event = "unsupported"

    def _service_slots(self, catalog: AlexaCatalog, service: str) -> dict[str, str]:
        slots: dict[str, str] = {}
        for placeholder in catalog.intents[service].placeholders:
            reading = self.slots.get(placeholder)
            if reading is None:
                continue
            if placeholder in NUMBER_PLACEHOLDERS:
                digits = _digits(reading)
                if digits and placeholder == "code":
                    # AMAZON.NUMBER drops leading zeros; link codes always have LINK_CODE_DIGITS digits.
                    digits = digits.zfill(LINK_CODE_DIGITS)
                if digits:
                    slots[placeholder] = digits
            elif reading.resolved_id and reading.resolved_id in catalog.vocabularies.get(placeholder, {}):
                slots[placeholder] = reading.resolved_id
        return slots


def _digits(reading: SlotReading | None) -> str | None:
    if reading is None or not reading.spoken:
        return None
    digits = "".join(ch for ch in reading.spoken if ch.isdigit())
    return digits or None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def map_locale(locale: str | None) -> str:
    """Alexa locales onto the service's two: Korean stays Korean, everything else is answered in English
    (the skill is published for en-US only)."""
    return "ko-KR" if (locale or "").lower().startswith("ko") else "en-US"


def parse_slot(name: str, raw: Any) -> SlotReading:
    slot = _object(raw)
    resolved_id = resolved_name = None
    for authority in _object(slot.get("resolutions")).get("resolutionsPerAuthority") or []:
        authority = _object(authority)
        if _object(authority.get("status")).get("code") != "ER_SUCCESS_MATCH":
            continue
        values = authority.get("values") or []
        if values:
            value = _object(_object(values[0]).get("value"))
            resolved_id, resolved_name = _text(value.get("id")), _text(value.get("name"))
            break
    spoken = slot.get("value")
    return SlotReading(name, str(spoken) if spoken not in (None, "") else None, resolved_id, resolved_name)


def parse_alexa_request(envelope: dict[str, Any]) -> AlexaRequest:
    """Reads every request type Alexa sends; raises ApiError(400) only when no user can be identified."""
    request = _object(envelope.get("request"))
    session = _object(envelope.get("session"))
    system = _object(_object(envelope.get("context")).get("System"))
    request_type = _text(request.get("type"))
    if request_type is None:
        raise ApiError(400, "malformed_request", "The Alexa request has no request.type.")
    raw_user = _object(session.get("user")) or _object(system.get("user"))
    raw_user_id = _text(raw_user.get("userId"))
    if raw_user_id is None:
        raise ApiError(400, "malformed_request", "The Alexa request names no user.")
    raw_session_id = _text(session.get("sessionId"))
    application = _object(system.get("application")) or _object(session.get("application"))
    intent = _object(request.get("intent"))
    parsed = AlexaRequest(
        request_type=request_type,
        user_id=speaker_user_id(PLATFORM, raw_user_id),
        platform_user=raw_user_id,
        request_id=_text(request.get("requestId")),
        platform_session=speaker_session_id(PLATFORM, raw_session_id) if raw_session_id else None,
        session_new=session.get("new") is True,
        session_attributes=_object(session.get("attributes")),
        access_token=_text(raw_user.get("accessToken")) or _text(session.get("accessToken")),
        application_id=_text(application.get("applicationId")),
        locale=map_locale(_text(request.get("locale"))),
        device_id=_text(_object(system.get("device")).get("deviceId")),
        intent_name=_text(intent.get("name")),
        confirmation_status=_text(intent.get("confirmationStatus")),
        dialog_state=_text(request.get("dialogState")),
        slots={name: parse_slot(name, raw) for name, raw in _object(intent.get("slots")).items()},
        raw_intent=intent or None,
        reason=_text(request.get("reason")),
        error_type=_text(_object(request.get("error")).get("type")),
    )
    return parsed
