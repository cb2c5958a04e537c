"""NUGU backend-proxy request → the service's Turn.

NUGU's play does the speech recognition and intent matching; the backend proxy gets an action name and
the action's parameters, each ``{"type": …, "value": "<string>"}``. The actions this service declares
and their parameters are listed in ``channels/nugu/README.md``. NUGU sends no user id: a play with
account linking sends the user's OAuth ``accessToken``, which is the only stable identity (kept as a
digest, never as the token); without it the user is known for one session only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from channels.speaker_ids import speaker_session_id, speaker_user_id
from http_api import ApiError
from skills.engine import Turn

PLATFORM = "nugu"
SlotResolver = Callable[[str, str], "str | None"]
LOCALE = "ko-KR"
_ACTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

# Parameter that carries the user's own words, when the play captures them.
UTTERANCE_PARAMETER = "utterance"
# Actions that are a spoken answer rather than an intent: the words the engine expects for them.
ANSWER_ACTIONS = {"answer.yes": "네", "answer.no": "아니요"}
PIN_ACTION, PIN_PARAMETER = "answer.pin", "pin"
LAUNCH_ACTION = "launch"
# The free-text action: its `utterance` parameter goes to the engine as a typed question would.
ASK_ACTION = "ask"


@dataclass
class NuguRequest:
    action: str
    parameters: dict[str, str]
    user_id: str
    # A digest of NUGU's session id: which service session continues is looked up server-side.
    platform_session: str | None
    linked: bool  # the play sent an access token (account linking done on the NUGU side)
    session_new: bool = False
    device_type: str | None = None
    event_type: str | None = None
    parameter_types: dict[str, str] = field(default_factory=dict)

    def to_turn(self, intents: Collection[str] = (), resolve_slot: SlotResolver | None = None) -> Turn:
        """``intents``: the service's intent names (an action of that name is that intent);
        ``resolve_slot(slot_type, words)``: the value id the words name, for parameters named after a slot."""
        turn = Turn(user_id=self.user_id, platform_session=self.platform_session, locale=LOCALE, channel=PLATFORM)
        if self.action == LAUNCH_ACTION:
            turn.event = "launch"
        elif self.action in ANSWER_ACTIONS:
            turn.text = ANSWER_ACTIONS[self.action]
        elif self.action == PIN_ACTION:
            turn.text = "".join(ch for ch in self.parameters.get(PIN_PARAMETER, "") if ch.isdigit())
        elif self.action == ASK_ACTION or self.action in intents:
            # The play's own words when it captured them; otherwise its parameters, which are the
            # entity words the user said ("등본", "123456"), for the engine and the skills to read.
            words = [v for k, v in self.parameters.items() if k != UTTERANCE_PARAMETER]
            turn.text = self.parameters.get(UTTERANCE_PARAMETER) or " ".join(words)
            if self.action in intents:
                turn.intent = self.action
                for name, value in self.parameters.items():
                    value_id = resolve_slot(name, value) if resolve_slot else None
                    if value_id:
                        turn.slots[name] = value_id
        else:
            # An action this service does not define: its parameters are the play's entities, not a question,
            # so they are not searched in the FAQ; the engine answers that it cannot help with that.
            turn.event = "unsupported"
        return turn


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_nugu_request(body: dict[str, Any], path_action: str) -> NuguRequest:
    action = _object(body.get("action"))
    action_name = action.get("actionName")
    if not isinstance(action_name, str) or not _ACTION_NAME.match(action_name):
        raise ApiError(400, "malformed_request", "action.actionName is missing or not a valid action name.")
    if action_name != path_action:
        raise ApiError(400, "action_mismatch", "The action in the path and in the body differ.")
    parameters: dict[str, str] = {}
    parameter_types: dict[str, str] = {}
    for name, spec in _object(action.get("parameters")).items():
        spec = _object(spec)
        value = spec.get("value")
        # Values are strings in the backend-proxy API; a null value is left out, as NUGU itself does.
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            parameters[name] = str(value).strip()
            if isinstance(spec.get("type"), str):
                parameter_types[name] = spec["type"]
    context = _object(body.get("context"))
    session = _object(context.get("session"))
    token = session.get("accessToken")
    raw_session = session.get("id")
    raw_session = _string(raw_session)
    platform_session = speaker_session_id(PLATFORM, raw_session) if raw_session else None
    if isinstance(token, str) and token:
        user_id = speaker_user_id(PLATFORM, token, secret=True)
    elif platform_session:
        user_id = speaker_user_id(PLATFORM, f"session:{raw_session}", secret=True)
    else:
        raise ApiError(400, "malformed_request", "context.session carries neither an accessToken nor an id.")
    device = _object(context.get("device"))
    return NuguRequest(
        action=action_name,
        parameters=parameters,
        user_id=user_id,
        platform_session=platform_session,
        linked=isinstance(token, str) and bool(token),
        session_new=session.get("isNew") is True,
        device_type=_string(device.get("type")),
        event_type=_string(_object(body.get("event")).get("type")),
        parameter_types=parameter_types,
    )
