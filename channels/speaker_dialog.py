"""One dialog turn on behalf of a speaker platform.

A speaker cannot show an HTTP error to its user: when storage is busy or a turn fails, the platform gets
a normal answer that says so in words (and, for NUGU, a non-OK result code), while the failure is logged.
Validation and authentication errors are not turns and still become HTTP errors before this point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from http_api import check_rate
from skills.engine import LINK_REQUIRED_SKILL, Reply, Turn
from storage import StorageUnavailable

log = logging.getLogger(__name__)

BUSY = (
    "지금은 요청이 많아 처리하지 못했어요. 잠시 후에 다시 말씀해 주세요.",
    "The service is busy right now. Please try again in a moment.",
)
FAILED = (
    "죄송해요, 처리하는 중에 문제가 생겼어요. 잠시 후에 다시 시도해 주세요.",
    "Sorry, something went wrong on our side. Please try again later.",
)


@dataclass
class SpeakerTurn:
    reply: Reply
    failure: str | None = None  # None | "busy" | "error"

    @property
    def needs_linking(self) -> bool:
        """The turn asked for personal data and the speaker user is not linked to a citizen yet."""
        return self.reply.skill == LINK_REQUIRED_SKILL


def _apology(turn: Turn, text: tuple[str, str]) -> Reply:
    locale = turn.locale or "ko-KR"
    speech = text[0] if locale.startswith("ko") else text[1]
    return Reply(
        speech=speech,
        intent="error",
        session_id=turn.session_id or "",
        locale=locale,
        ssml=f"<speak>{speech}</speak>",
        end_session=False,
    )


def converse_for_speaker(dialog, turn: Turn) -> SpeakerTurn:  # noqa: ANN001 - DialogEngine, kept duck-typed
    try:
        return SpeakerTurn(dialog.converse(turn))
    except StorageUnavailable:
        log.warning("speaker turn: storage busy", extra={"channel": turn.channel})
        return SpeakerTurn(_apology(turn, BUSY), failure="busy")
    except Exception:  # noqa: BLE001 - the platform must get an answer; the traceback goes to the log
        log.exception("speaker turn failed", extra={"channel": turn.channel})
        return SpeakerTurn(_apology(turn, FAILED), failure="error")


def charge_speaker_turn(turn: Turn) -> SpeakerTurn | None:
    """Charges the turn to its user's and device's rate limits (429 beyond them, as on every route); None when it
    may go on. The limits are counted in the database, so a database that is down answers here first: the
    platform then gets its spoken "busy" answer, like a turn that found storage down, not an HTTP 503."""
    try:
        check_rate(user=turn.user_id, device=turn.device_id)
    except StorageUnavailable:
        log.warning("speaker turn: storage busy", extra={"channel": turn.channel})
        return SpeakerTurn(_apology(turn, BUSY), failure="busy")
    return None
