"""The common Reply in Alexa's response format (outputSpeech as SSML, reprompt, Simple card, session flag)."""

from __future__ import annotations

from typing import Any

from skills.engine import Reply

VERSION = "1.0"
CARD_TITLE = "Minwon Voice"

# What Alexa says when the user stays silent after a question; keyed by what the reply expects.
_REPROMPTS = {
    "confirmation": ("네 또는 아니요로 답해 주세요.", "Please answer yes or no."),
    "pin": ("네 자리 비밀번호를 말씀해 주세요.", "Please say your four-digit PIN."),
    None: ("더 도와드릴 일이 있을까요?", "Is there anything else I can help you with?"),
}


def _ssml(text: str) -> dict[str, str]:
    return {"type": "SSML", "ssml": text}


def _reprompt(reply: Reply) -> dict[str, Any]:
    ko = reply.locale.startswith("ko")
    if reply.expects == "slot":
        # The question itself is the best reminder of which answer is wanted.
        return {"outputSpeech": _ssml(reply.ssml)}
    text = _REPROMPTS.get(reply.expects, _REPROMPTS[None])[0 if ko else 1]
    return {"outputSpeech": _ssml(f"<speak>{text}</speak>")}


def render_alexa(reply: Reply, session_attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Alexa's response for a reply; a reply without speech (session end) has no outputSpeech."""
    response: dict[str, Any] = {}
    if reply.speech:
        response["outputSpeech"] = _ssml(reply.ssml)
        if reply.display:
            response["card"] = {
                "type": "Simple",
                "title": reply.display.get("title") or CARD_TITLE,
                "content": reply.display.get("body") or reply.speech,
            }
        if not reply.end_session:
            response["reprompt"] = _reprompt(reply)
    response["shouldEndSession"] = bool(reply.end_session)
    body: dict[str, Any] = {"version": VERSION, "response": response}
    if not reply.end_session:
        # The dialog state lives on the server; the attributes Alexa sent come back unchanged.
        body["sessionAttributes"] = dict(session_attributes or {})
    return body


def render_empty() -> dict[str, Any]:
    """The answer to requests that take no speech (SessionEndedRequest, System.ExceptionEncountered, events)."""
    return {"version": VERSION, "response": {}}


def render_delegate(raw_intent: dict[str, Any] | None, session_attributes: dict[str, Any]) -> dict[str, Any]:
    """Hands the dialog back to Alexa while it is still collecting the intent's slots."""
    directive: dict[str, Any] = {"type": "Dialog.Delegate"}
    if raw_intent:
        directive["updatedIntent"] = raw_intent
    return {
        "version": VERSION,
        "sessionAttributes": dict(session_attributes),
        "response": {"directives": [directive], "shouldEndSession": False},
    }
