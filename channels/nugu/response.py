"""The common Reply as a NUGU backend-proxy response.

``output`` holds the play's backend parameters (all strings; see ``channels/nugu/README.md``). Handled
outcomes are HTTP 200: ``resultCode`` is ``OK``, or an exception code the play routes on.
"""

from __future__ import annotations

from typing import Any

from skills.engine import Reply

VERSION = "2.0"
OK = "OK"
ACCOUNT_NOT_LINKED = "accountNotLinked"
SERVICE_BUSY = "serviceBusy"
BACKEND_ERROR = "backendError"


def reply_output(reply: Reply) -> dict[str, str]:
    display = reply.display or {}
    return {
        "ment": reply.speech,
        "display_title": display.get("title", ""),
        "display_body": display.get("body", ""),
        "expects": reply.expects or "none",
        "end_session": "true" if reply.end_session else "false",
        "intent": reply.intent,
    }


def render_nugu(reply: Reply, result_code: str = OK) -> dict[str, Any]:
    return {"version": VERSION, "resultCode": result_code, "output": reply_output(reply), "directives": []}
