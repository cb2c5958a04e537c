"""The common Reply as a Kakao i Open Builder SkillResponse (version 2.0).

At most three simpleText outputs of at most 1,000 characters each, at most ten quick replies; a
confirmation question gets "네"/"아니요" (Yes/No) quick replies, a question with a short list of
expected answers gets those answers. A PIN question gets none: a PIN typed into a chat stays in its
history, and a button would not help anyway.
"""

from __future__ import annotations

import re
from typing import Any

from skills.engine import Reply

VERSION = "2.0"
MAX_OUTPUTS = 3
MAX_TEXT = 1000
MAX_QUICK_REPLIES = 10
MAX_LABEL = 14

YES_NO = {"ko": ("네", "아니요"), "en": ("Yes", "No")}
WAIT_TEXT = {
    "ko": "답변을 준비하고 있어요. 잠시만 기다려 주세요.",
    "en": "I'm preparing your answer. One moment, please.",
}
_SENTENCE_END = re.compile(r"(?<=[.?!。])\s+")


def _chunks(text: str) -> list[str]:
    """The text in at most three pieces of at most 1,000 characters, cut between sentences where possible."""
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text.strip()):
        while len(sentence) > MAX_TEXT:  # one sentence longer than a bubble: cut it hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:MAX_TEXT])
            sentence = sentence[MAX_TEXT:]
        candidate = f"{current} {sentence}".strip()
        if len(candidate) > MAX_TEXT:
            pieces.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        pieces.append(current)
    if len(pieces) > MAX_OUTPUTS:
        last = pieces[MAX_OUTPUTS - 1]
        pieces = pieces[: MAX_OUTPUTS - 1] + [last[: MAX_TEXT - 1].rstrip() + "…"]
    return pieces


def _quick_reply(text: str) -> dict[str, str]:
    label = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    return {"label": label, "action": "message", "messageText": text}


def quick_replies(reply: Reply) -> list[dict[str, str]]:
    if reply.expects == "confirmation":
        return [_quick_reply(word) for word in YES_NO["ko" if reply.locale.startswith("ko") else "en"]]
    if reply.expects == "slot" and reply.grammar:
        return [_quick_reply(choice) for choice in dict.fromkeys(reply.grammar)][:MAX_QUICK_REPLIES]
    return []


def render_kakao(reply: Reply) -> dict[str, Any]:
    outputs = [{"simpleText": {"text": piece}} for piece in _chunks(reply.speech)]
    if not outputs:
        # Open Builder needs one output; an empty reply (a session end) still says a short goodbye.
        outputs = [{"simpleText": {"text": "안녕히 계세요." if reply.locale.startswith("ko") else "Goodbye."}}]
    template: dict[str, Any] = {"outputs": outputs}
    replies = quick_replies(reply)
    if replies:
        template["quickReplies"] = replies
    return {"version": VERSION, "template": template}


def render_callback_ack(locale: str | None) -> dict[str, Any]:
    """The immediate answer when the turn will arrive later through the callback URL."""
    return {"version": VERSION, "useCallback": True, "data": {"text": WAIT_TEXT["en" if locale == "en-US" else "ko"]}}
