"""Kakao i Open Builder skill payload → the service's Turn.

The Open Builder bot passes the user's words through (``userRequest.utterance``; the engine does its own
intent matching) plus the parameters its block extracted. Kakao has no session id: one bot user's
conversation is one dialog session, which expires after the service's session TTL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from channels.speaker_ids import speaker_session_id, speaker_user_id
from http_api import ApiError
from skills.engine import Turn

PLATFORM = "kakao"
# Open Builder's built-in block for a user who opens the chat: the service greets as on a speaker launch.
WELCOME_BLOCKS = frozenset({"웰컴 블록", "Welcome Block"})


@dataclass
class KakaoRequest:
    user_id: str
    # Kakao has no sessions: one conversation per bot, whose service session is looked up server-side.
    platform_session: str
    utterance: str
    locale: str | None = None
    callback_url: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    block_name: str | None = None
    bot_id: str | None = None

    def to_turn(self) -> Turn:
        # Block parameters are the bot's reading, in the bot's own vocabulary: the engine matches the
        # utterance itself, so they travel only for logging and for skills that look at raw words.
        welcome = self.block_name in WELCOME_BLOCKS
        return Turn(
            user_id=self.user_id,
            text="" if welcome else self.utterance,
            platform_session=self.platform_session,
            locale=self.locale,
            channel=PLATFORM,
            event="launch" if welcome else None,
        )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def map_lang(lang: Any) -> str | None:
    """Open Builder's ``lang`` ("ko", or "kr" as some bots send it, "en") onto the service's locales."""
    if not isinstance(lang, str) or not lang:
        return None
    lang = lang.lower()
    if lang.startswith(("ko", "kr")):
        return "ko-KR"
    if lang.startswith("en"):
        return "en-US"
    return None


def _params(action: dict[str, Any]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in _object(action.get("params")).items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            params[name] = str(value)
    # detailParams carries the normalised value; it wins over the plain one where both exist.
    for name, detail in _object(action.get("detailParams")).items():
        value = _object(detail).get("value")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            params[name] = str(value)
    return params


def parse_kakao_request(payload: dict[str, Any], max_text_chars: int = 1000) -> KakaoRequest:
    user_request = _object(payload.get("userRequest"))
    user = _object(user_request.get("user"))
    raw_user_id = user.get("id")
    if not isinstance(raw_user_id, str) or not raw_user_id.strip():
        raise ApiError(400, "malformed_request", "userRequest.user.id is missing.")
    utterance = user_request.get("utterance")
    if not isinstance(utterance, str):
        raise ApiError(400, "malformed_request", "userRequest.utterance is missing.")
    utterance = utterance.strip()
    if len(utterance) > max_text_chars:
        raise ApiError(400, "text_too_long", f"The utterance must be at most {max_text_chars} characters.")
    bot = _object(payload.get("bot"))
    bot_id = bot.get("id") if isinstance(bot.get("id"), str) else None
    callback_url = user_request.get("callbackUrl")
    block = _object(user_request.get("block"))
    return KakaoRequest(
        user_id=speaker_user_id(PLATFORM, raw_user_id.strip()),
        # One conversation per bot user; the bot id keeps two bots on one server apart.
        platform_session=speaker_session_id(PLATFORM, bot_id or "-"),
        utterance=utterance,
        locale=map_lang(user_request.get("lang")),
        callback_url=callback_url if isinstance(callback_url, str) and callback_url else None,
        params=_params(_object(payload.get("action"))),
        block_name=block.get("name") if isinstance(block.get("name"), str) else None,
        bot_id=bot_id,
    )
